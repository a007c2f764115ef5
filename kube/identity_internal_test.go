package kube

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// testdata/identity holds keys made for this test only, by
// `ssh-keygen -t ed25519` (ked) and `ssh-keygen -t rsa -b 2048 -m PEM`
// (krsa, the format Flux v1 kept), and what `ssh-keygen -l -v -E md5` and
// `-E sha256` print for them (*.md5, *.sha256).
func TestReadKeyMatchesSSHKeygen(t *testing.T) {
	for _, name := range []string{"ked", "krsa"} {
		t.Run(name, func(t *testing.T) {
			read := func(suffix string) []byte {
				b, err := os.ReadFile(filepath.Join("testdata", "identity", name+suffix))
				if err != nil {
					t.Fatal(err)
				}
				return b
			}
			priv, pub := read(""), read(".pub")
			sec := &unstructured.Unstructured{Object: map[string]interface{}{
				"data": map[string]interface{}{
					DeployKeyPrivate: base64.StdEncoding.EncodeToString(priv),
					DeployKeyPublic:  base64.StdEncoding.EncodeToString(pub),
				},
			}}
			dk, err := readKey(sec)
			if err != nil {
				t.Fatal(err)
			}
			if dk.PublicKey != string(pub) {
				t.Errorf("public key %q, want the stored %q", dk.PublicKey, pub)
			}
			if string(dk.PrivateKeyPEM) != string(priv) {
				t.Error("private key changed")
			}
			for _, fp := range []struct {
				got    Fingerprint
				suffix string
			}{{dk.MD5, ".md5"}, {dk.SHA256, ".sha256"}} {
				// "<bits> <hash> <comment> (<type>)\n<randomart>"
				first, art, _ := strings.Cut(string(read(fp.suffix)), "\n")
				hash := strings.Fields(first)[1]
				if fp.got.Hash != hash {
					t.Errorf("%s hash %q, want %q", fp.suffix, fp.got.Hash, hash)
				}
				if fp.got.Randomart != art {
					t.Errorf("%s randomart:\n%s\nwant:\n%s", fp.suffix, fp.got.Randomart, art)
				}
			}
		})
	}
}

func TestReadKeyWithoutStoredPublicKey(t *testing.T) {
	priv, err := os.ReadFile(filepath.Join("testdata", "identity", "ked"))
	if err != nil {
		t.Fatal(err)
	}
	sec := &unstructured.Unstructured{Object: map[string]interface{}{
		"data": map[string]interface{}{DeployKeyPrivate: base64.StdEncoding.EncodeToString(priv)},
	}}
	dk, err := readKey(sec)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(dk.PublicKey, "ssh-ed25519 AAAA") || !strings.HasSuffix(dk.PublicKey, " fluxd\n") {
		t.Errorf("public key %q", dk.PublicKey)
	}
	if _, err := readKey(&unstructured.Unstructured{Object: map[string]interface{}{}}); err == nil {
		t.Error("a Secret without a key read without error")
	}
}

func TestRandomartTitleTooLong(t *testing.T) {
	// OpenSSH falls back to the type alone when "[type size]" does not
	// fit the 17 columns.
	art := Randomart("ED25519-CERT 256", "SHA256", make([]byte, 32))
	if first, _, _ := strings.Cut(art, "\n"); first != "+-[ED25519-CERT]--+" {
		t.Errorf("top border %q", first)
	}
	if n := strings.Count(art, "\n"); n != 11 {
		t.Errorf("%d lines, want 11", n)
	}
}
