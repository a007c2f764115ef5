package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/fluxd/fluxd/gitstate"
)

// TestSmoke proves each part of the environment is real: if any of them is
// missing or fake, one of these fails.
func TestSmoke(t *testing.T) {
	t.Run("kube-apiserver", testSmokeKube)
	t.Run("git-over-ssh", testSmokeGit)
	t.Run("registry", testSmokeRegistry)
	t.Run("memcached", testSmokeMemcached)
}

func testSmokeKube(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs, err := kubernetes.NewForConfig(env.Kube.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "smoke"}}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "smoke", Namespace: "smoke"},
		Data:       map[string]string{"answer": "42"},
	}
	if _, err := cs.CoreV1().ConfigMaps("smoke").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := cs.CoreV1().ConfigMaps("smoke").Get(ctx, "smoke", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Data["answer"] != "42" || got.UID == "" {
		t.Fatalf("read back %+v, want answer=42 with a UID set by the apiserver", got)
	}
	// kubectl, built with the control plane, sees the same object.
	out, err := env.Kube.Kubectl(ctx, "get", "configmap", "smoke", "-n", "smoke", "-o", "jsonpath={.data.answer}")
	if err != nil || string(out) != "42" {
		t.Fatalf("kubectl get: %q, %v", out, err)
	}
}

func testSmokeGit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	remote, err := env.Git.NewRepo("smoke", "main")
	if err != nil {
		t.Fatal(err)
	}
	repo, err := gitstate.Open(gitstate.Config{
		URL:    remote.SSHURL,
		Branch: "main",
		Dir:    t.TempDir(),
		Auth: gitstate.Auth{
			SSHPrivateKey: env.Git.ClientKey.PrivatePEM,
			SSHPublicKey:  env.Git.ClientKey.PublicAuthorized,
			KnownHosts:    []byte(env.Git.KnownHosts),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	sig := gitstate.Signature{Name: "Smoke Test", Email: "smoke@example.com", When: time.Now()}
	commit, err := repo.CommitFiles("", map[string][]byte{"deploy/cm.yaml": []byte("kind: ConfigMap\n")}, "Add a manifest", sig, sig)
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.SetNote("refs/notes/flux", commit, []byte(`{"smoke":true}`), sig); err != nil {
		t.Fatal(err)
	}
	if err := repo.Push(ctx, commit+":refs/heads/main", "refs/notes/flux"); err != nil {
		t.Fatal(err)
	}

	// A fresh clone with the git CLI, over ssh, sees the commit and its note.
	clone := filepath.Join(t.TempDir(), "clone")
	git := func(dir string, args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), env.Git.GitEnv()...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("", "clone", remote.SSHURL, clone)
	git(clone, "fetch", "origin", "refs/notes/*:refs/notes/*")
	if head := git(clone, "rev-parse", "HEAD"); head != commit {
		t.Fatalf("clone HEAD %s, want %s", head, commit)
	}
	if note := git(clone, "notes", "--ref=flux", "show", commit); note != `{"smoke":true}` {
		t.Fatalf("note read back as %q", note)
	}
	if _, err := os.Stat(filepath.Join(clone, "deploy", "cm.yaml")); err != nil {
		t.Fatal(err)
	}
}

func testSmokeRegistry(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ref, digest, err := env.Registry.PushRandomImage(ctx, "smoke/app", "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	repo, err := name.NewRepository(env.Registry.Host+"/smoke/app", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	tags, err := remote.List(repo, remote.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(tags) != "[1.0.0]" {
		t.Fatalf("tags of %s: %v, want [1.0.0]", repo, tags)
	}
	got, err := remote.Head(mustTag(t, ref), remote.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	if got.Digest.String() != digest {
		t.Fatalf("digest %s, pushed %s", got.Digest, digest)
	}
}

func mustTag(t *testing.T, ref string) name.Tag {
	t.Helper()
	tag, err := name.NewTag(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return tag
}

func testSmokeMemcached(t *testing.T) {
	mc := memcache.New(env.Memcached.Addr)
	mc.Timeout = 2 * time.Second
	if err := mc.Set(&memcache.Item{Key: "smoke", Value: []byte("hello")}); err != nil {
		t.Fatal(err)
	}
	it, err := mc.Get("smoke")
	if err != nil {
		t.Fatal(err)
	}
	if string(it.Value) != "hello" {
		t.Fatalf("memcached returned %q", it.Value)
	}
}
