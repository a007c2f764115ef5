package gitstate_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fluxd/fluxd/gitstate"
)

var sig = gitstate.Signature{Name: "fluxd", Email: "fluxd@example.com", When: time.Unix(1700000000, 0).UTC()}

// remote is a bare repository on disk, reached over file://.
type remote struct {
	Path string
	URL  string
}

// newRemote makes an empty bare repository whose HEAD names main.
func newRemote(t *testing.T) remote {
	t.Helper()
	path := filepath.Join(t.TempDir(), "remote.git")
	runGit(t, "", "init", "--quiet", "--bare", "-b", "main", path)
	return remote{Path: path, URL: "file://" + path}
}

// seed commits files to the remote's main with the git CLI and returns the
// new commit's ID. Empty content deletes a file.
func (r remote) seed(t *testing.T, message string, files map[string]string) string {
	t.Helper()
	work := filepath.Join(t.TempDir(), "work")
	runGit(t, "", "clone", "--quiet", r.Path, work)
	for p, content := range files {
		full := filepath.Join(work, p)
		if content == "" {
			runGit(t, work, "rm", "--quiet", "-r", p)
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		runGit(t, work, "add", p)
	}
	runGit(t, work, "commit", "--quiet", "-m", message)
	runGit(t, work, "push", "--quiet", "origin", "HEAD:refs/heads/main")
	return strings.TrimSpace(runGit(t, work, "rev-parse", "HEAD"))
}

// git runs the git CLI in the remote.
func (r remote) git(t *testing.T, args ...string) string {
	t.Helper()
	return strings.TrimSpace(runGit(t, r.Path, args...))
}

func runGit(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GIT_AUTHOR_NAME=test", "GIT_AUTHOR_EMAIL=test@example.com",
		"GIT_COMMITTER_NAME=test", "GIT_COMMITTER_EMAIL=test@example.com",
		"GIT_CONFIG_NOSYSTEM=1", "HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// open opens a fresh mirror of the remote's main.
func (r remote) open(t *testing.T) *gitstate.Repo {
	t.Helper()
	m, err := gitstate.Open(gitstate.Config{URL: r.URL, Branch: "main", Dir: filepath.Join(t.TempDir(), "mirror")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// openFetched opens a mirror and fetches it.
func (r remote) openFetched(t *testing.T) *gitstate.Repo {
	t.Helper()
	m := r.open(t)
	fetch(t, m)
	return m
}

func fetch(t *testing.T, m *gitstate.Repo) {
	t.Helper()
	if err := m.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func push(t *testing.T, m *gitstate.Repo, refspecs ...string) {
	t.Helper()
	if err := m.Push(context.Background(), refspecs...); err != nil {
		t.Fatal(err)
	}
}

func head(t *testing.T, m *gitstate.Repo) string {
	t.Helper()
	h, err := m.Head()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// commit makes a commit on parent with CommitFiles and pushes it to main.
func commit(t *testing.T, m *gitstate.Repo, parent, message string, files map[string][]byte) string {
	t.Helper()
	id, err := m.CommitFiles(parent, files, message, sig, sig)
	if err != nil {
		t.Fatal(err)
	}
	push(t, m, id+":refs/heads/main")
	return id
}

func writeFile(path, content string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(content), 0o644)
}
