package harness

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/fluxd/fluxd/gitstate"
)

func startGitServer(t *testing.T) (*GitServer, context.Context) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	g, err := StartGitServer(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Stop)
	return g, ctx
}

func (g *GitServer) auth() gitstate.Auth {
	return gitstate.Auth{
		SSHPrivateKey: g.ClientKey.PrivatePEM,
		SSHPublicKey:  g.ClientKey.PublicAuthorized,
		KnownHosts:    []byte(g.KnownHosts),
	}
}

func openMirror(t *testing.T, repo *GitRepo, auth gitstate.Auth) *gitstate.Repo {
	t.Helper()
	m, err := gitstate.Open(gitstate.Config{URL: repo.SSHURL, Branch: repo.Branch, Auth: auth, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

func gitCLI(t *testing.T, ctx context.Context, g *GitServer, dir string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), g.GitEnv()...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestGitServerSSH writes a commit, a note and a sync tag through gitstate
// over ssh, and reads them back with the git CLI over ssh.
func TestGitServerSSH(t *testing.T) {
	g, ctx := startGitServer(t)
	repo, err := g.NewRepo("config", "main")
	if err != nil {
		t.Fatal(err)
	}
	m := openMirror(t, repo, g.auth())
	if err := m.Fetch(ctx); err != nil {
		t.Fatalf("fetch of an empty repo: %v", err)
	}
	sig := gitstate.Signature{Name: "fluxd", Email: "fluxd@example.com", When: time.Unix(1700000000, 0)}
	commit, err := m.CommitFiles("", map[string][]byte{"apps/podinfo.yaml": []byte("kind: Namespace\n")}, "Add podinfo", sig, sig)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetNote("refs/notes/flux", commit, []byte(`{"jobID":"j1"}`), sig); err != nil {
		t.Fatal(err)
	}
	if err := m.SetTag("flux-sync/test", commit, "synced", sig); err != nil {
		t.Fatal(err)
	}
	if err := m.Push(ctx, commit+":refs/heads/main", "refs/notes/flux", "+refs/tags/flux-sync/test"); err != nil {
		t.Fatal(err)
	}

	clone := filepath.Join(t.TempDir(), "clone")
	gitCLI(t, ctx, g, "", "clone", "--quiet", repo.SSHURL, clone)
	if b, err := os.ReadFile(filepath.Join(clone, "apps/podinfo.yaml")); err != nil || string(b) != "kind: Namespace\n" {
		t.Fatalf("cloned file: %q, %v", b, err)
	}
	gitCLI(t, ctx, g, clone, "fetch", "--quiet", "origin", "refs/notes/*:refs/notes/*")
	if log := gitCLI(t, ctx, g, clone, "log", "--notes=flux", "-1"); !strings.Contains(log, `{"jobID":"j1"}`) {
		t.Fatalf("git log --notes=flux does not show the note:\n%s", log)
	}
	if tagged := gitCLI(t, ctx, g, clone, "rev-parse", "flux-sync/test^{commit}"); strings.TrimSpace(tagged) != commit {
		t.Fatalf("flux-sync/test is %s, want %s", tagged, commit)
	}
}

// TestGitServerSSHRejects checks that a wrong client key is ErrAuth, a wrong
// host key is ErrHostKey, and a ref the server refuses is ErrRejected.
func TestGitServerSSHRejects(t *testing.T) {
	g, ctx := startGitServer(t)
	repo, err := g.NewRepo("config", "main")
	if err != nil {
		t.Fatal(err)
	}

	wrongKey := g.auth()
	wrongKey.SSHPrivateKey, wrongKey.SSHPublicKey = newKey(t)
	err = openMirror(t, repo, wrongKey).Fetch(ctx)
	if !errors.Is(err, gitstate.ErrAuth) {
		t.Errorf("fetch with a wrong key: got %v, want ErrAuth", err)
	}
	t.Logf("wrong key: %v", err)

	wrongHost := g.auth()
	_, otherPub := newKey(t)
	wrongHost.KnownHosts = []byte(strings.Fields(g.KnownHosts)[0] + " " + string(otherPub))
	err = openMirror(t, repo, wrongHost).Fetch(ctx)
	if !errors.Is(err, gitstate.ErrHostKey) {
		t.Errorf("fetch with a wrong known_hosts: got %v, want ErrHostKey", err)
	}
	t.Logf("wrong host key: %v", err)
	unknownHost := g.auth()
	unknownHost.KnownHosts = []byte("[example.com]:22 " + string(otherPub))
	err = openMirror(t, repo, unknownHost).Fetch(ctx)
	if !errors.Is(err, gitstate.ErrHostKey) {
		t.Errorf("fetch with the host missing from known_hosts: got %v, want ErrHostKey", err)
	}
	t.Logf("unknown host: %v", err)

	// A pre-receive hook that refuses every tag: the push "succeeds" in
	// libgit2, and only the per-ref status tells.
	hook := filepath.Join(repo.Path, "hooks", "pre-receive")
	script := "#!/bin/sh\nwhile read old new ref; do case $ref in refs/tags/*) echo no tags >&2; exit 1;; esac; done\n"
	if err := os.WriteFile(hook, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	m := openMirror(t, repo, g.auth())
	sig := gitstate.Signature{Name: "fluxd", Email: "fluxd@example.com"}
	commit, err := m.CommitFiles("", map[string][]byte{"a.yaml": []byte("a: 1\n")}, "a", sig, sig)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetTag("flux-sync/test", commit, "synced", sig); err != nil {
		t.Fatal(err)
	}
	err = m.Push(ctx, "+refs/tags/flux-sync/test")
	if !errors.Is(err, gitstate.ErrRejected) || errors.Is(err, gitstate.ErrNonFastForward) {
		t.Errorf("push refused by a hook: got %v, want ErrRejected and not ErrNonFastForward", err)
	}
	t.Logf("refused by a hook: %v", err)
}

// TestGitServerUnreachable checks that a stopped server is ErrUnreachable.
func TestGitServerUnreachable(t *testing.T) {
	g, ctx := startGitServer(t)
	repo, err := g.NewRepo("config", "main")
	if err != nil {
		t.Fatal(err)
	}
	g.Stop()
	err = openMirror(t, repo, g.auth()).Fetch(ctx)
	if !errors.Is(err, gitstate.ErrUnreachable) {
		t.Errorf("fetch from a stopped server: got %v, want ErrUnreachable", err)
	}
	t.Logf("stopped server: %v", err)
}

// newKey returns a fresh ed25519 key: OpenSSH private PEM and
// authorized_keys public line.
func newKey(t *testing.T) (priv, pub []byte) {
	t.Helper()
	pk, sk, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(sk, "")
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pk)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(block), ssh.MarshalAuthorizedKey(sshPub)
}
