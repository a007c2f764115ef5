package sync

import (
	"context"
	"errors"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/fluxd/fluxd/kube/resource"
	"github.com/fluxd/fluxd/notes"
)

// fakeRepo is an in-memory Repo: a local side and a "remote" side, so tests
// can tell what was written from what was pushed.
type fakeRepo struct {
	mu         gosync.Mutex
	head       string
	files      map[string][]resource.File // by path
	tags       map[string]string          // local
	notes      map[string]string          // local, "ref commit" -> data
	remoteTags map[string]string
	remoteNote map[string]string
	fetchErr   error
	pushErr    error
	pushes     int
}

func newFakeRepo(head string) *fakeRepo {
	return &fakeRepo{head: head, files: map[string][]resource.File{"deploy": {{Path: "deploy/a.yaml", Data: []byte("a")}}},
		tags: map[string]string{}, notes: map[string]string{}, remoteTags: map[string]string{}, remoteNote: map[string]string{}}
}

func (r *fakeRepo) Fetch(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fetchErr != nil {
		return r.fetchErr
	}
	// Like the real mirror, a fetch replaces local tags and notes with the remote's.
	r.tags, r.notes = clone(r.remoteTags), clone(r.remoteNote)
	return nil
}
func (r *fakeRepo) Head() (string, error) { r.mu.Lock(); defer r.mu.Unlock(); return r.head, nil }
func (r *fakeRepo) Files(commit string, paths []string) ([]resource.File, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fs, ok := r.files[paths[0]]
	if !ok {
		return nil, ErrPathNotFound
	}
	return fs, nil
}
func (r *fakeRepo) Tag(name string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.tags[name]
	if !ok {
		return "", ErrNotFound
	}
	return c, nil
}
func (r *fakeRepo) Note(ref, commit string) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n, ok := r.notes[ref+" "+commit]
	if !ok {
		return nil, ErrNotFound
	}
	return []byte(n), nil
}
func (r *fakeRepo) Record(_ context.Context, w Write) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notes[w.NotesRef+" "+w.Commit] = string(w.Note)
	if w.Tag != "" {
		r.tags[w.Tag] = w.Commit
	}
	if r.pushErr != nil {
		return r.pushErr
	}
	r.pushes++
	r.remoteTags, r.remoteNote = clone(r.tags), clone(r.notes)
	return nil
}

func clone(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

type fakeCluster struct {
	applies    int
	forced     int
	err        error
	fail       bool // report one failed object
	blockPrune string
}

func (c *fakeCluster) Apply(_ context.Context, files []resource.File, force bool, blockPrune string) (resource.ChangeSet, error) {
	if c.err != nil {
		return resource.ChangeSet{}, c.err
	}
	c.applies++
	if force {
		c.forced++
	}
	c.blockPrune = blockPrune
	cs := resource.ChangeSet{Changes: []resource.Change{{ID: resource.MakeID("d", "ConfigMap", "a"), Source: "deploy/a.yaml", Action: resource.Created}}}
	if c.fail {
		cs.Changes = append(cs.Changes, resource.Change{ID: resource.MakeID("d", "Widget", "w"), Source: "deploy/w.yaml", Action: resource.Failed, Error: "no matches for kind Widget"})
	}
	return cs, nil
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newLoop(t *testing.T, repo *fakeRepo, cl *fakeCluster, ck *clock, ro bool, paths ...string) *Loop {
	t.Helper()
	if len(paths) == 0 {
		paths = []string{"deploy"}
	}
	l, err := New(Config{Cluster: "test", Paths: paths, ReadOnly: ro, PollInterval: time.Minute, SyncInterval: 5 * time.Minute}, repo, cl, WithClock(ck.now))
	if err != nil {
		t.Fatal(err)
	}
	l.nextForce = ck.t.Add(5 * time.Minute)
	return l
}

const tag, ref = "flux-sync/test", "refs/notes/flux-sync/test"

func TestFirstSyncWritesNoteAndTag(t *testing.T) {
	repo, cl, ck := newFakeRepo("c1"), &fakeCluster{}, &clock{time.Unix(1e9, 0)}
	l := newLoop(t, repo, cl, ck, false)
	if err := l.Step(context.Background()); err != nil {
		t.Fatal(err)
	}
	if repo.remoteTags[tag] != "c1" {
		t.Fatalf("remote tag %q, want c1", repo.remoteTags[tag])
	}
	rec, err := notes.DecodeSyncRecord([]byte(repo.remoteNote[ref+" c1"]))
	if err != nil || rec.Commit != "c1" || rec.Counts.Applied != 1 || rec.Cluster != "test" {
		t.Fatalf("remote note %+v, %v", rec, err)
	}
	// Nothing new: no apply, no push.
	if err := l.Step(context.Background()); err != nil {
		t.Fatal(err)
	}
	if cl.applies != 1 || repo.pushes != 1 {
		t.Fatalf("applies %d pushes %d after an idle step, want 1 and 1", cl.applies, repo.pushes)
	}
	// A new commit is applied and the tag follows.
	repo.head = "c2"
	if err := l.Step(context.Background()); err != nil {
		t.Fatal(err)
	}
	if cl.applies != 2 || repo.remoteTags[tag] != "c2" || l.Status().Applied != "c2" {
		t.Fatalf("after c2: applies %d tag %q status %+v", cl.applies, repo.remoteTags[tag], l.Status())
	}
}

func TestRestartReadsTagAndDoesNotReapply(t *testing.T) {
	repo, cl, ck := newFakeRepo("c1"), &fakeCluster{}, &clock{time.Unix(1e9, 0)}
	repo.remoteTags[tag] = "c1"
	l := newLoop(t, repo, cl, ck, false)
	if err := l.Step(context.Background()); err != nil {
		t.Fatal(err)
	}
	if cl.applies != 0 {
		t.Fatalf("applied %d times although the tag marks the head", cl.applies)
	}
	// The drift pass still comes, forced.
	ck.t = ck.t.Add(5 * time.Minute)
	if err := l.Step(context.Background()); err != nil {
		t.Fatal(err)
	}
	if cl.forced != 1 {
		t.Fatalf("forced applies %d, want 1", cl.forced)
	}
}

func TestPartialFailureRecordedButTagStays(t *testing.T) {
	repo, cl, ck := newFakeRepo("c1"), &fakeCluster{}, &clock{time.Unix(1e9, 0)}
	l := newLoop(t, repo, cl, ck, false)
	if err := l.Step(context.Background()); err != nil {
		t.Fatal(err)
	}
	repo.head, cl.fail = "c2", true
	if err := l.Step(context.Background()); err != nil {
		t.Fatal(err)
	}
	if repo.remoteTags[tag] != "c1" {
		t.Fatalf("tag moved to %q although c2 failed in part", repo.remoteTags[tag])
	}
	rec, err := notes.DecodeSyncRecord([]byte(repo.remoteNote[ref+" c2"]))
	if err != nil || rec.OK() || len(rec.Errors) != 1 || rec.Errors[0].Path != "deploy/w.yaml" || rec.Errors[0].Object != "d:widget/w" {
		t.Fatalf("note on c2: %+v, %v", rec, err)
	}
}

func TestApplyErrorWritesNothingAndRecovers(t *testing.T) {
	repo, cl, ck := newFakeRepo("c1"), &fakeCluster{err: errors.New("connection refused")}, &clock{time.Unix(1e9, 0)}
	l := newLoop(t, repo, cl, ck, false)
	if err := l.Step(context.Background()); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("step error %v", err)
	}
	if len(repo.remoteTags)+len(repo.remoteNote) != 0 {
		t.Fatalf("wrote to git after a failed apply: %v %v", repo.remoteTags, repo.remoteNote)
	}
	cl.err = nil
	if err := l.Step(context.Background()); err != nil {
		t.Fatal(err)
	}
	if repo.remoteTags[tag] != "c1" {
		t.Fatal("did not recover")
	}
}

func TestPushFailureIsRetried(t *testing.T) {
	repo, cl, ck := newFakeRepo("c1"), &fakeCluster{}, &clock{time.Unix(1e9, 0)}
	repo.pushErr = errors.New("remote hung up")
	l := newLoop(t, repo, cl, ck, false)
	if err := l.Step(context.Background()); err == nil {
		t.Fatal("push failure not reported")
	}
	if !l.Status().PendingPush || l.Status().Applied != "" {
		t.Fatalf("status %+v", l.Status())
	}
	repo.pushErr = nil
	if err := l.Step(context.Background()); err != nil {
		t.Fatal(err)
	}
	if repo.remoteTags[tag] != "c1" || repo.remoteNote[ref+" c1"] == "" || cl.applies != 1 {
		t.Fatalf("after retry: tags %v notes %d applies %d", repo.remoteTags, len(repo.remoteNote), cl.applies)
	}
}

func TestReadOnlyWritesNothing(t *testing.T) {
	repo, cl, ck := newFakeRepo("c1"), &fakeCluster{}, &clock{time.Unix(1e9, 0)}
	l := newLoop(t, repo, cl, ck, true)
	for i := 0; i < 2; i++ {
		if err := l.Step(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if repo.pushes != 0 || len(repo.tags) != 0 || len(repo.notes) != 0 || cl.applies != 1 {
		t.Fatalf("read-only: pushes %d tags %v notes %v applies %d", repo.pushes, repo.tags, repo.notes, cl.applies)
	}
	if l.Status().Applied != "c1" {
		t.Fatalf("status %+v", l.Status())
	}
}

func TestMissingPathBlocksPruneButOthersSync(t *testing.T) {
	repo, cl, ck := newFakeRepo("c1"), &fakeCluster{}, &clock{time.Unix(1e9, 0)}
	l := newLoop(t, repo, cl, ck, false, "deploy", "missing")
	if err := l.Step(context.Background()); err != nil {
		t.Fatal(err)
	}
	if cl.applies != 1 || cl.blockPrune == "" {
		t.Fatalf("applies %d blockPrune %q", cl.applies, cl.blockPrune)
	}
	rec, _ := notes.DecodeSyncRecord([]byte(repo.remoteNote[ref+" c1"]))
	if rec.OK() || rec.Errors[0].Path != "missing" || repo.remoteTags[tag] != "" {
		t.Fatalf("record %+v tag %q", rec, repo.remoteTags[tag])
	}
}

func TestFetchErrorIsReported(t *testing.T) {
	repo, cl, ck := newFakeRepo("c1"), &fakeCluster{}, &clock{time.Unix(1e9, 0)}
	repo.fetchErr = errors.New("unreachable")
	l := newLoop(t, repo, cl, ck, false)
	if err := l.Step(context.Background()); err == nil || cl.applies != 0 {
		t.Fatalf("err %v applies %d", err, cl.applies)
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	repo, cl := newFakeRepo("c1"), &fakeCluster{}
	l, err := New(Config{Cluster: "test", Paths: []string{"deploy"}, PollInterval: 10 * time.Millisecond, SyncInterval: time.Hour}, repo, cl)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- l.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for l.Status().Applied != "c1" && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil || l.Status().Applied != "c1" {
		t.Fatalf("run: %v, status %+v", err, l.Status())
	}
}

func TestConfigValidation(t *testing.T) {
	if _, err := New(Config{Cluster: "bad/name", PollInterval: time.Second, SyncInterval: time.Second}, nil, nil); err == nil {
		t.Fatal("bad cluster name accepted")
	}
	if _, err := New(Config{Cluster: "ok"}, nil, nil); err == nil {
		t.Fatal("zero intervals accepted")
	}
}
