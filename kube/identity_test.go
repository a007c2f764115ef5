package kube_test

import (
	"encoding/base64"
	"regexp"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/fluxd/fluxd/kube"
)

var secretGVR = schema.GroupVersionResource{Version: "v1", Resource: "secrets"}

var (
	sha256RE = regexp.MustCompile(`^SHA256:[A-Za-z0-9+/]{43}$`)
	md5RE    = regexp.MustCompile(`^MD5:([0-9a-f]{2}:){15}[0-9a-f]{2}$`)
	pubRE    = regexp.MustCompile(`^ssh-ed25519 AAAAC3NzaC1lZDI1NTE5[A-Za-z0-9+/=]+ fluxd\n$`)
)

func checkDeployKey(t *testing.T, dk kube.DeployKey) {
	t.Helper()
	if !pubRE.MatchString(dk.PublicKey) {
		t.Errorf("public key %q", dk.PublicKey)
	}
	if !sha256RE.MatchString(dk.SHA256.Hash) || !md5RE.MatchString(dk.MD5.Hash) {
		t.Errorf("fingerprints %q %q", dk.SHA256.Hash, dk.MD5.Hash)
	}
	for _, fp := range []struct{ art, alg string }{{dk.SHA256.Randomart, "[SHA256]"}, {dk.MD5.Randomart, "[MD5]"}} {
		lines := strings.Split(strings.TrimSuffix(fp.art, "\n"), "\n")
		if len(lines) != 11 || lines[0] != "+--[ED25519 256]--+" || !strings.Contains(lines[10], fp.alg) || !strings.HasSuffix(fp.art, "\n") {
			t.Errorf("randomart:\n%s", fp.art)
		}
		for _, l := range lines {
			if len(l) != 19 {
				t.Errorf("randomart line %q is not 19 wide", l)
			}
		}
	}
	signer, err := ssh.ParsePrivateKey(dk.PrivateKeyPEM)
	if err != nil {
		t.Fatalf("private key: %v", err)
	}
	if !strings.HasPrefix(string(dk.PrivateKeyPEM), "-----BEGIN OPENSSH PRIVATE KEY-----\n") {
		t.Errorf("private key is not OpenSSH PEM")
	}
	if got := ssh.FingerprintSHA256(signer.PublicKey()); got != dk.SHA256.Hash {
		t.Errorf("private key's fingerprint %s, want %s", got, dk.SHA256.Hash)
	}
}

func TestDeployKey(t *testing.T) {
	e := newEnv(t)
	e.sync(kube.SyncOptions{}, file("ns.yaml", namespaceYAML(e.ns)))
	const name = "fluxd-git-deploy"

	dk, err := e.cluster.DeployKey(e.ctx, e.ns, name, false)
	if err != nil {
		t.Fatal(err)
	}
	checkDeployKey(t, dk)
	t.Logf("%s%s %s\n%s", dk.PublicKey, dk.SHA256.Hash, dk.MD5.Hash, dk.SHA256.Randomart)

	sec := e.get(secretGVR, e.ns, name)
	if typ, _, _ := unstructured.NestedString(sec.Object, "type"); typ != "Opaque" {
		t.Errorf("secret type %q", typ)
	}
	for key, want := range map[string]string{"identity": string(dk.PrivateKeyPEM), "identity.pub": dk.PublicKey} {
		enc, _, _ := unstructured.NestedString(sec.Object, "data", key)
		if b, _ := base64.StdEncoding.DecodeString(enc); string(b) != want {
			t.Errorf("secret %s = %q, want %q", key, b, want)
		}
	}

	// Read again: the same key.
	again, err := e.cluster.DeployKey(e.ctx, e.ns, name, false)
	if err != nil {
		t.Fatal(err)
	}
	if again.SHA256 != dk.SHA256 || again.PublicKey != dk.PublicKey || string(again.PrivateKeyPEM) != string(dk.PrivateKeyPEM) {
		t.Error("second read gave another key")
	}

	// Regenerated: another key, which stays.
	re, err := e.cluster.DeployKey(e.ctx, e.ns, name, true)
	if err != nil {
		t.Fatal(err)
	}
	checkDeployKey(t, re)
	if re.SHA256.Hash == dk.SHA256.Hash || re.PublicKey == dk.PublicKey {
		t.Error("regenerate kept the key")
	}
	if after, err := e.cluster.DeployKey(e.ctx, e.ns, name, false); err != nil || after.SHA256 != re.SHA256 {
		t.Errorf("read after regenerate: %v, %v; want the new key", after.SHA256.Hash, err)
	}

	// Many at once, with no Secret yet, agree on one key.
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		seen = map[string]int{}
	)
	for range 8 {
		wg.Go(func() {
			k, err := e.cluster.DeployKey(e.ctx, e.ns, name+"-race", false)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			seen[k.SHA256.Hash]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if len(seen) != 1 {
		t.Errorf("concurrent first calls made %d keys: %v", len(seen), seen)
	}

	if _, err := e.cluster.DeployKey(e.ctx, e.ns+"-missing", name, false); err == nil {
		t.Error("no error for a namespace that does not exist")
	} else {
		t.Logf("missing namespace: %v", err)
	}
}
