package kube

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/md5"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// The keys of the deploy-key Secret.
const (
	// DeployKeyPrivate holds the private key, PEM: OpenSSH's format for
	// the keys fluxd makes; any format ssh.ParsePrivateKey reads (Flux
	// v1's RSA keys) is used as it is.
	DeployKeyPrivate = "identity"
	// DeployKeyPublic holds the public key, an authorized_keys line.
	DeployKeyPublic = "identity.pub"
	// DeployKeyComment is the comment of the public keys fluxd makes.
	DeployKeyComment = "fluxd"
)

// DeployKey is the SSH key fluxd uses to reach its git repository.
type DeployKey struct {
	// PrivateKeyPEM is the private key, unencrypted, PEM.
	PrivateKeyPEM []byte
	// PublicKey is the public key as one authorized_keys line with
	// DeployKeyComment (for a key fluxd made) and a final newline, e.g.
	// "ssh-ed25519 AAAAC3... fluxd\n".
	PublicKey string
	// SHA256 and MD5 are the public key's fingerprints, as
	// `ssh-keygen -l -v -E sha256` and `-E md5` print them.
	SHA256 Fingerprint
	MD5    Fingerprint
}

// Fingerprint is a key's fingerprint in one hash.
type Fingerprint struct {
	// Hash is "SHA256:<unpadded base64>" or "MD5:<hex pairs with colons>".
	Hash string
	// Randomart is OpenSSH's picture of the hash (the "drunken bishop"),
	// eleven lines, each ending in a newline.
	Randomart string
}

var secretGVR = schema.GroupVersionResource{Version: "v1", Resource: "secrets"}

// DeployKey returns the SSH deploy key kept in the Secret namespace/name,
// making an ed25519 key (and the Secret) when there is none, and a new one
// when regenerate is true. A Secret that exists without a readable key in
// DeployKeyPrivate gets a new key too. Several fluxd processes calling it
// at once agree on one key: a Secret created or changed by another since
// it was read is read again.
func (c *Cluster) DeployKey(ctx context.Context, namespace, name string, regenerate bool) (DeployKey, error) {
	ri := c.dyn.Resource(secretGVR).Namespace(namespace)
	for attempt := 0; ; attempt++ {
		if attempt == 5 {
			return DeployKey{}, fmt.Errorf("deploy key in secret %s/%s: changed by someone else on every attempt", namespace, name)
		}
		sec, err := ri.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			key, pemBytes, pub, err := newDeployKey()
			if err != nil {
				return DeployKey{}, err
			}
			sec = &unstructured.Unstructured{Object: map[string]interface{}{
				"apiVersion": "v1", "kind": "Secret",
				"metadata": map[string]interface{}{
					"name": name, "namespace": namespace,
					"labels": map[string]interface{}{"app.kubernetes.io/managed-by": "fluxd"},
				},
				"type": "Opaque",
			}}
			setKeyData(sec, pemBytes, pub)
			_, err = ri.Create(ctx, sec, metav1.CreateOptions{FieldManager: c.opts.fieldManager})
			if apierrors.IsAlreadyExists(err) {
				continue // made by another fluxd meanwhile: use that one
			}
			if err != nil {
				return DeployKey{}, fmt.Errorf("deploy key: create secret %s/%s: %w", namespace, name, err)
			}
			return describeKey(key, pemBytes)
		}
		if err != nil {
			return DeployKey{}, fmt.Errorf("deploy key: get secret %s/%s: %w", namespace, name, err)
		}
		if !regenerate {
			if dk, err := readKey(sec); err == nil {
				return dk, nil
			}
		}
		key, pemBytes, pub, err := newDeployKey()
		if err != nil {
			return DeployKey{}, err
		}
		setKeyData(sec, pemBytes, pub)
		// The resourceVersion read makes this update conditional.
		_, err = ri.Update(ctx, sec, metav1.UpdateOptions{FieldManager: c.opts.fieldManager})
		if apierrors.IsConflict(err) {
			regenerate = false // someone else wrote a key since: read it
			continue
		}
		if err != nil {
			return DeployKey{}, fmt.Errorf("deploy key: update secret %s/%s: %w", namespace, name, err)
		}
		return describeKey(key, pemBytes)
	}
}

// setKeyData puts a key into a Secret's data.
func setKeyData(sec *unstructured.Unstructured, pemBytes []byte, pub string) {
	data, _, _ := unstructured.NestedMap(sec.Object, "data")
	if data == nil {
		data = map[string]interface{}{}
	}
	data[DeployKeyPrivate] = base64.StdEncoding.EncodeToString(pemBytes)
	data[DeployKeyPublic] = base64.StdEncoding.EncodeToString([]byte(pub))
	sec.Object["data"] = data
}

// readKey reads the key of a deploy-key Secret.
func readKey(sec *unstructured.Unstructured) (DeployKey, error) {
	enc, _, _ := unstructured.NestedString(sec.Object, "data", DeployKeyPrivate)
	pemBytes, err := base64.StdEncoding.DecodeString(enc)
	if err != nil || len(pemBytes) == 0 {
		return DeployKey{}, fmt.Errorf("no key in %s", DeployKeyPrivate)
	}
	key, err := ssh.ParseRawPrivateKey(pemBytes)
	if err != nil {
		return DeployKey{}, err
	}
	dk, err := describeKey(key, pemBytes)
	if err != nil {
		return DeployKey{}, err
	}
	// Keep the comment of a public key stored beside the private one.
	if enc, _, _ := unstructured.NestedString(sec.Object, "data", DeployKeyPublic); enc != "" {
		if b, err := base64.StdEncoding.DecodeString(enc); err == nil {
			stored, _, _, _, err := ssh.ParseAuthorizedKey(b)
			if err == nil && ssh.FingerprintSHA256(stored) == dk.SHA256.Hash {
				dk.PublicKey = strings.TrimRight(string(b), "\n") + "\n"
			}
		}
	}
	return dk, nil
}

// newDeployKey makes an ed25519 key and returns it, as OpenSSH PEM, and
// its authorized_keys line.
func newDeployKey() (ed25519.PrivateKey, []byte, string, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, "", fmt.Errorf("deploy key: generate: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, DeployKeyComment)
	if err != nil {
		return nil, nil, "", fmt.Errorf("deploy key: encode: %w", err)
	}
	spub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, nil, "", fmt.Errorf("deploy key: encode: %w", err)
	}
	return priv, pem.EncodeToMemory(block), authorizedKey(spub), nil
}

func authorizedKey(pub ssh.PublicKey) string {
	return strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(pub)), "\n") + " " + DeployKeyComment + "\n"
}

// describeKey returns the DeployKey of a private key.
func describeKey(key interface{}, pemBytes []byte) (DeployKey, error) {
	signer, err := ssh.NewSignerFromKey(key)
	if err != nil {
		return DeployKey{}, fmt.Errorf("deploy key: %w", err)
	}
	pub := signer.PublicKey()
	title := keyTitle(pub)
	blob := pub.Marshal()
	sha := sha256.Sum256(blob)
	sum := md5.Sum(blob)
	return DeployKey{
		PrivateKeyPEM: pemBytes,
		PublicKey:     authorizedKey(pub),
		SHA256:        Fingerprint{Hash: ssh.FingerprintSHA256(pub), Randomart: Randomart(title, "SHA256", sha[:])},
		MD5:           Fingerprint{Hash: "MD5:" + ssh.FingerprintLegacyMD5(pub), Randomart: Randomart(title, "MD5", sum[:])},
	}, nil
}

// keyTitle is the key's type and size as OpenSSH writes them atop its
// randomart, e.g. "ED25519 256" or "RSA 4096".
func keyTitle(pub ssh.PublicKey) string {
	cp, ok := pub.(ssh.CryptoPublicKey)
	if !ok {
		return strings.ToUpper(pub.Type())
	}
	switch k := cp.CryptoPublicKey().(type) {
	case ed25519.PublicKey:
		return "ED25519 256"
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d", k.N.BitLen())
	case *ecdsa.PublicKey:
		return fmt.Sprintf("ECDSA %d", k.Curve.Params().BitSize)
	}
	return strings.ToUpper(pub.Type())
}

// Randomart draws a hash as OpenSSH's "drunken bishop" does
// (fingerprint_randomart in sshkey.c), with title ("ED25519 256") in the
// top border and alg ("SHA256") in the bottom one: a bishop starts in
// the middle of a 17x9 board and makes four diagonal moves per byte, two
// bits each, lowest first; each square shows how often it was visited.
// Every line ends with a newline, as ssh-keygen prints it.
func Randomart(title, alg string, digest []byte) string {
	const (
		w, h  = 17, 9
		chars = " .o+=*BOX@%&#/^SE"
	)
	top := len(chars) - 1 // 'E'
	var field [w][h]int
	x, y := w/2, h/2
	for _, b := range digest {
		in := int(b)
		for range 4 {
			if in&1 != 0 {
				x++
			} else {
				x--
			}
			if in&2 != 0 {
				y++
			} else {
				y--
			}
			x = min(max(x, 0), w-1)
			y = min(max(y, 0), h-1)
			if field[x][y] < top-2 {
				field[x][y]++
			}
			in >>= 2
		}
	}
	field[w/2][h/2] = top - 1 // 'S'
	field[x][y] = top         // 'E'

	border := func(label string) string {
		// OpenSSH writes the label into a buffer of w bytes: at most
		// w-1 characters fit.
		if len(label) > w-1 {
			label = label[:w-1]
		}
		left := (w - len(label)) / 2
		return "+" + strings.Repeat("-", left) + label + strings.Repeat("-", w-left-len(label)) + "+\n"
	}
	t := "[" + title + "]"
	if len(t) > w {
		t = "[" + strings.Fields(title)[0] + "]"
	}
	var b strings.Builder
	b.WriteString(border(t))
	for j := 0; j < h; j++ {
		b.WriteByte('|')
		for i := 0; i < w; i++ {
			b.WriteByte(chars[min(field[i][j], top)])
		}
		b.WriteString("|\n")
	}
	b.WriteString(border("[" + alg + "]"))
	return b.String()
}
