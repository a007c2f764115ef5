package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/fluxd/fluxd/e2e/harness"
	"github.com/fluxd/fluxd/notes"
)

// binDir holds fluxd and fluxctl, built once by TestMain with -race.
var binDir string

func buildBinaries(dir string) error {
	binDir = filepath.Join(dir, "bin")
	cmd := exec.Command("go", "build", "-race", "-o", binDir+"/", "github.com/fluxd/fluxd/cmd/fluxd", "github.com/fluxd/fluxd/cmd/fluxctl")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build fluxd and fluxctl: %v\n%s", err, out)
	}
	return nil
}

func kubeClient(t *testing.T) *kubernetes.Clientset {
	t.Helper()
	cs, err := kubernetes.NewForConfig(env.Kube.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// testName turns the test's name into something fit for a namespace, a
// repo name and a cluster name.
func testName(t *testing.T) string {
	s := strings.ToLower(regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(t.Name(), "-"))
	if len(s) > 40 {
		s = s[:40]
	}
	return strings.Trim(s, "-")
}

// workRepo is a clone of a repo on the git server that a test edits and
// pushes with the git CLI over ssh, as a user would.
type workRepo struct {
	t      *testing.T
	remote *harness.GitRepo
	dir    string
}

func newWorkRepo(t *testing.T) *workRepo {
	t.Helper()
	remote, err := env.Git.NewRepo(testName(t), "main")
	if err != nil {
		t.Fatal(err)
	}
	w := &workRepo{t: t, remote: remote, dir: t.TempDir()}
	w.git("init", "-q", "-b", "main")
	w.git("remote", "add", "origin", remote.SSHURL)
	return w
}

func (w *workRepo) git(args ...string) string {
	w.t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.name=E2E", "-c", "user.email=e2e@example.com"}, args...)...)
	cmd.Dir = w.dir
	cmd.Env = append(os.Environ(), env.Git.GitEnv()...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		w.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// commit writes files (content "" deletes), commits and pushes; it returns
// the new commit.
func (w *workRepo) commit(msg string, files map[string]string) string {
	w.t.Helper()
	for p, content := range files {
		full := filepath.Join(w.dir, p)
		if content == "" {
			if err := os.Remove(full); err != nil {
				w.t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			w.t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			w.t.Fatal(err)
		}
	}
	w.git("add", "-A")
	w.git("commit", "-q", "-m", msg)
	w.git("push", "-q", "origin", "main")
	return w.git("rev-parse", "HEAD")
}

// syncTag is the commit the remote's sync tag for cluster points at, or "".
func (w *workRepo) syncTag(cluster string) string {
	w.t.Helper()
	out := w.git("ls-remote", "origin", "refs/tags/"+notes.SyncTag(cluster)+"^{}")
	if out == "" {
		out = w.git("ls-remote", "origin", "refs/tags/"+notes.SyncTag(cluster))
	}
	sha, _, _ := strings.Cut(out, "\t")
	return sha
}

// syncRecord fetches the notes and reads cluster's sync record on commit.
func (w *workRepo) syncRecord(cluster, commit string) (notes.SyncRecord, bool) {
	w.t.Helper()
	w.git("fetch", "-q", "-f", "origin", "refs/notes/*:refs/notes/*")
	cmd := exec.Command("git", "notes", "--ref="+notes.SyncNotesRef(cluster), "show", commit)
	cmd.Dir = w.dir
	out, err := cmd.Output()
	if err != nil {
		return notes.SyncRecord{}, false
	}
	r, err := notes.DecodeSyncRecord(out)
	if err != nil {
		w.t.Fatalf("sync note on %s: %v\n%s", commit, err, out)
	}
	return r, true
}

// daemon is a fluxd process run by a test.
type daemon struct {
	t    *testing.T
	proc *harness.Process
	url  string // the API's base URL, http://127.0.0.1:<port>/api/flux
}

// fluxdArgs are the flags every e2e fluxd gets: the test's repo over ssh,
// the control plane, fast polling.
func fluxdArgs(w *workRepo, cluster string, extra ...string) []string {
	return append([]string{
		"--kubeconfig", env.Kube.Kubeconfig,
		"--git-url", w.remote.SSHURL,
		"--git-branch", "main",
		"--git-ssh-key-file", env.Git.ClientKey.PrivatePath,
		"--git-known-hosts-file", env.Git.KnownHostsPath,
		"--git-poll-interval", "1s",
		"--cluster-name", cluster,
		"--log-format", "console",
		"--log-level", "debug",
	}, extra...)
}

func startFluxd(t *testing.T, name string, args ...string) *daemon {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	port, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	args = append(args, "--listen", listen)
	p, err := harness.StartProcess(dir, "fluxd", filepath.Join(binDir, "fluxd"), args...)
	if err != nil {
		t.Fatal(err)
	}
	d := &daemon{t: t, proc: p, url: "http://" + listen + "/api/flux"}
	t.Cleanup(func() {
		d.stop()
		if t.Failed() {
			t.Logf("fluxd %s log:\n%s", name, p.Tail(6000))
		}
	})
	return d
}

// stop sends SIGTERM and checks that fluxd exits cleanly and in time.
func (d *daemon) stop() {
	d.t.Helper()
	if done, _ := d.proc.Exited(); done {
		return
	}
	start := time.Now()
	d.proc.Stop(10 * time.Second)
	_, err := d.proc.Exited()
	if time.Since(start) > 9*time.Second {
		d.t.Errorf("fluxd took %s to stop on SIGTERM", time.Since(start))
	}
	if err != nil {
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 0 {
			if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGTERM {
				d.t.Errorf("fluxd exited with %v on SIGTERM", err)
			}
		}
	}
}

// waitFor polls cond for up to timeout, failing with what it last said.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		ok, msg := cond()
		if ok {
			return
		}
		last = msg
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s; last: %s", timeout, what, last)
}

// configMapData returns the ConfigMap's data, or nil if it does not exist.
func configMapData(t *testing.T, ns, name string) map[string]string {
	t.Helper()
	cm, err := kubeClient(t).CoreV1().ConfigMaps(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return nil
	}
	if cm.Data == nil {
		return map[string]string{}
	}
	return cm.Data
}

func namespaceYAML(ns string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n", ns)
}

func configMapYAML(ns, name string, data map[string]string, annotations ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\n  namespace: %s\n", name, ns)
	if len(annotations) > 0 {
		b.WriteString("  annotations:\n")
		for i := 0; i+1 < len(annotations); i += 2 {
			fmt.Fprintf(&b, "    %s: %q\n", annotations[i], annotations[i+1])
		}
	}
	b.WriteString("data:\n")
	for k, v := range data {
		fmt.Fprintf(&b, "  %s: %q\n", k, v)
	}
	return b.String()
}
