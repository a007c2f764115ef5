package jobs_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fluxd/fluxd/gitstate"
	"github.com/fluxd/fluxd/gitstate/adapt"
	"github.com/fluxd/fluxd/kube/resource"
	"github.com/fluxd/fluxd/notes"
	"github.com/fluxd/fluxd/sync/jobs"
)

var committer = jobs.Signature{Name: "fluxd", Email: "fluxd@example.com"}

// remote is a bare repository on disk, reached over file://.
type remote struct {
	Path string
	URL  string
}

// newRemote makes a bare repository whose main holds one manifest per
// workload name, deploy/<name>.yaml, each running image nginx:1.
func newRemote(t *testing.T, names ...string) remote {
	t.Helper()
	path := filepath.Join(t.TempDir(), "remote.git")
	runGit(t, "", "init", "--quiet", "--bare", "-b", "main", path)
	r := remote{Path: path, URL: "file://" + path}
	files := map[string]string{"README.md": "cluster\n"}
	for _, n := range names {
		files["deploy/"+n+".yaml"] = manifest(n, "nginx:1")
	}
	r.commit(t, "Initial commit", files)
	return r
}

func manifest(name, image string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %s
  namespace: default
spec:
  template:
    spec:
      containers:
      - name: app
        image: %s
`, name, image)
}

// clone makes a work tree of the remote, with its job notes.
func (r remote) clone(t *testing.T) string {
	t.Helper()
	work := filepath.Join(t.TempDir(), "work")
	runGit(t, "", "clone", "--quiet", r.Path, work)
	runGit(t, work, "fetch", "--quiet", "origin", "+refs/notes/*:refs/notes/*")
	return work
}

// commit commits files to the remote's main from a new clone, as someone
// else would, and returns the commit's ID.
func (r remote) commit(t *testing.T, message string, files map[string]string) string {
	t.Helper()
	work := filepath.Join(t.TempDir(), "work")
	runGit(t, "", "clone", "--quiet", r.Path, work)
	for p, content := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(work, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(work, p), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		runGit(t, work, "add", p)
	}
	runGit(t, work, "commit", "--quiet", "-m", message)
	runGit(t, work, "push", "--quiet", "origin", "HEAD:refs/heads/main")
	return strings.TrimSpace(runGit(t, work, "rev-parse", "HEAD"))
}

// addNote adds a note to commit in refs/notes/flux and pushes it, as
// someone else would.
func (r remote) addNote(t *testing.T, commit, text string) {
	t.Helper()
	work := r.clone(t)
	runGit(t, work, "notes", "--ref=flux", "add", "-f", "-m", text, commit)
	runGit(t, work, "push", "--quiet", "origin", "refs/notes/flux")
}

// git runs the git CLI in the remote.
func (r remote) git(t *testing.T, args ...string) string {
	t.Helper()
	return strings.TrimSpace(runGit(t, r.Path, args...))
}

// notes returns the remote's job notes by commit.
func (r remote) notes(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	list := r.git(t, "notes", "--ref=flux", "list")
	for _, line := range strings.Split(list, "\n") {
		if f := strings.Fields(line); len(f) == 2 {
			out[f[1]] = r.git(t, "cat-file", "-p", f[0])
		}
	}
	return out
}

func (r remote) head(t *testing.T) string { return r.git(t, "rev-parse", "refs/heads/main") }

func runGit(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GIT_AUTHOR_NAME=someone", "GIT_AUTHOR_EMAIL=someone@example.com",
		"GIT_COMMITTER_NAME=someone", "GIT_COMMITTER_EMAIL=someone@example.com",
		"GIT_CONFIG_NOSYSTEM=1", "HOME="+t.TempDir())
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// mirror opens a fresh libgit2 mirror of the remote's main, adapted to
// the queue's Repo.
func (r remote) mirror(t *testing.T) *adapt.JobsRepo {
	t.Helper()
	m, err := gitstate.Open(gitstate.Config{URL: r.URL, Branch: "main", Dir: filepath.Join(t.TempDir(), "mirror")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return &adapt.JobsRepo{Repo: m}
}

func config() jobs.Config {
	return jobs.Config{Branch: "main", Paths: []string{"deploy"}, Committer: committer}
}

func newQueue(t *testing.T, repo jobs.Repo, cfg jobs.Config, opts ...jobs.Option) *jobs.Queue {
	t.Helper()
	q, err := jobs.New(repo, cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// start runs the queue's worker until the test ends, or until the returned
// stop is called.
func start(t *testing.T, q *jobs.Queue) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- q.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// wait polls a job's status until it is finished.
func wait(t *testing.T, q *jobs.Queue, id string) jobs.Status {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s, err := q.Status(context.Background(), id)
		if err != nil {
			t.Fatalf("status of %s: %v", id, err)
		}
		if s.State == jobs.Succeeded || s.State == jobs.Failed {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s still %s", id, s.State)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func workload(name string) resource.ID { return resource.MakeID("default", "deployment", name) }

var imageRE = regexp.MustCompile(`(?m)^(\s+image: )(\S+)$`)

// setImage is an Edit that sets the image of workload name, as a release
// would. It returns the file even when the image is already set, so that
// the queue sees a change that changes nothing.
func setImage(name, image string) jobs.Edit {
	return func(files []resource.File) (map[string][]byte, map[resource.ID]notes.WorkloadResult, error) {
		for _, f := range files {
			if f.Path != "deploy/"+name+".yaml" {
				continue
			}
			m := imageRE.FindSubmatch(f.Data)
			if m == nil {
				return nil, nil, fmt.Errorf("%s has no image", f.Path)
			}
			data := imageRE.ReplaceAll(f.Data, []byte("${1}"+image))
			return map[string][]byte{f.Path: data}, map[resource.ID]notes.WorkloadResult{
				workload(name): {Status: notes.WorkloadSuccess, Containers: []notes.ContainerUpdate{
					{Container: "app", Current: string(m[2]), Target: image},
				}},
			}, nil
		}
		return nil, map[resource.ID]notes.WorkloadResult{
			workload(name): {Status: notes.WorkloadSkipped, Error: notes.ReasonNotInRepo},
		}, nil
	}
}

func release(name, image string) jobs.Job {
	return jobs.Job{
		Kind:    notes.KindImage,
		Spec:    []byte(fmt.Sprintf(`{"type":"image","cause":{"Message":"","User":"Kim"},"spec":{"ServiceSpecs":[%q],"ImageSpec":%q,"Kind":"execute","Excludes":null,"Force":false}}`, workload(name), image)),
		Cause:   notes.Cause{User: "Kim <kim@example.com>"},
		Message: fmt.Sprintf("Release %s to %s", image, workload(name)),
		Author:  jobs.Signature{Name: "Kim", Email: "kim@example.com"},
		Edit:    setImage(name, image),
	}
}

// faultyRepo wraps a Repo so that a test can make pushes fail.
type faultyRepo struct {
	jobs.Repo
	// push, when set, is called instead of a push of refspecs; it may call
	// next to do the push.
	push func(ctx context.Context, next func() error, refspecs []string) error
	// fetch, when set, is called instead of a fetch.
	fetch func(ctx context.Context, next func() error) error
	// tx is the Tx of the push in progress, for pushOnly.
	tx jobs.Tx
}

// pushOnly pushes some of the refspecs of the push in progress, for a push
// hook that makes a push land in part.
func (r *faultyRepo) pushOnly(ctx context.Context, refspecs []string) error {
	return r.tx.Push(ctx, refspecs...)
}

func (r *faultyRepo) Update(ctx context.Context, fn func(jobs.Tx) error) error {
	return r.Repo.Update(ctx, func(tx jobs.Tx) error { return fn(faultyTx{Tx: tx, r: r}) })
}

type faultyTx struct {
	jobs.Tx
	r *faultyRepo
}

func (t faultyTx) Push(ctx context.Context, refspecs ...string) error {
	next := func() error { return t.Tx.Push(ctx, refspecs...) }
	if t.r.push == nil {
		return next()
	}
	t.r.tx = t.Tx
	return t.r.push(ctx, next, refspecs)
}

func (t faultyTx) Fetch(ctx context.Context) error {
	next := func() error { return t.Tx.Fetch(ctx) }
	if t.r.fetch == nil {
		return next()
	}
	return t.r.fetch(ctx, next)
}

func toBranch(refspecs []string) bool {
	for _, rs := range refspecs {
		if strings.HasSuffix(rs, ":refs/heads/main") {
			return true
		}
	}
	return false
}
