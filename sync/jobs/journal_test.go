package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/fluxd/fluxd/kube/resource"
	"github.com/fluxd/fluxd/notes"
	"github.com/fluxd/fluxd/sync/jobs"
)

// resumeRelease rebuilds the test's release jobs from their spec, as fluxd
// rebuilds policy jobs.
func resumeRelease(kind string, spec json.RawMessage) (jobs.Edit, error) {
	var s struct {
		Spec struct {
			ServiceSpecs []string
			ImageSpec    string
		} `json:"spec"`
	}
	if kind != notes.KindImage || json.Unmarshal(spec, &s) != nil || len(s.Spec.ServiceSpecs) != 1 {
		return nil, errors.New("not a release")
	}
	_, name, _ := strings.Cut(s.Spec.ServiceSpecs[0], "/")
	return setImage(name, s.Spec.ImageSpec), nil
}

// journal returns the remote's job journal, all notes' lines.
func (r remote) journal(t *testing.T) []notes.JobEvent {
	t.Helper()
	var out []notes.JobEvent
	list := r.git(t, "notes", "--ref=flux-jobs/default", "list")
	for _, line := range strings.Split(list, "\n") {
		if f := strings.Fields(line); len(f) == 2 {
			evs, skipped := notes.DecodeJobEvents([]byte(r.git(t, "cat-file", "-p", f[0])))
			if skipped > 0 {
				t.Errorf("journal note on %s has %d unreadable lines", f[1], skipped)
			}
			out = append(out, evs...)
		}
	}
	return out
}

// acceptOnly submits job to a queue that never runs it, as a fluxd that
// stops right after accepting it; it returns the job's ID.
func acceptOnly(t *testing.T, r remote, job jobs.Job) string {
	t.Helper()
	id, err := newQueue(t, r.mirror(t), config()).Submit(context.Background(), job)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// restart starts a new queue on a fresh mirror, as a restarted fluxd, and
// waits for job id to finish there.
func restart(t *testing.T, r remote, id string, opts ...jobs.Option) jobs.Status {
	t.Helper()
	q := newQueue(t, r.mirror(t), config(), opts...)
	start(t, q)
	return wait(t, q, id)
}

// A job accepted by a fluxd that stops before running it is run by the
// next fluxd, under the same ID.
func TestAcceptedJobRunsAfterRestart(t *testing.T) {
	r := newRemote(t, "cart")
	job := release("cart", "nginx:2")
	id := acceptOnly(t, r, job)
	evs := r.journal(t)
	if len(evs) != 1 || evs[0].JobID != id || evs[0].Event != notes.EventQueued || evs[0].Message != job.Message ||
		evs[0].Author == nil || evs[0].Author.Email != "kim@example.com" || string(evs[0].Spec) != string(job.Spec) {
		t.Fatalf("journal %+v", evs)
	}

	s := restart(t, r, id, jobs.WithResume(resumeRelease))
	if s.State != jobs.Succeeded || s.Commit == "" || r.head(t) != s.Commit {
		t.Fatalf("resumed job %+v", s)
	}
	if got := r.git(t, "log", "-1", "--format=%an|%s", "main"); got != "Kim|Release nginx:2 to default:deployment/cart" {
		t.Errorf("commit %s", got)
	}
	if all := r.notes(t); len(all) != 1 || !strings.Contains(all[s.Commit], id) {
		t.Errorf("notes %v", all)
	}
	evs = r.journal(t)
	if len(evs) != 2 || evs[1].Event != notes.EventResumed {
		t.Errorf("journal %+v", evs)
	}

	// A third fluxd neither runs it again nor forgets it.
	if s3 := restart(t, r, id, jobs.WithResume(resumeRelease)); s3.State != jobs.Succeeded || s3.Commit != s.Commit {
		t.Errorf("status in a third fluxd %+v", s3)
	}
	if n := r.git(t, "rev-list", "--count", "main"); n != "2" {
		t.Errorf("%s commits, want 2", n)
	}
}

// A job that cannot be run again is failed with the reason, never unknown.
func TestAcceptedJobWithoutResumeFails(t *testing.T) {
	r := newRemote(t, "cart")
	id := acceptOnly(t, r, release("cart", "nginx:2"))
	s := restart(t, r, id) // no WithResume
	if s.State != jobs.Failed || !strings.Contains(s.Err, "fluxd stopped before the job finished") || s.Kind != notes.KindImage {
		t.Fatalf("status %+v", s)
	}
	// The failure is in the journal, for every later fluxd.
	if s3 := restart(t, r, id, jobs.WithResume(resumeRelease)); s3.State != jobs.Failed || s3.Err != s.Err {
		t.Errorf("status in a third fluxd %+v", s3)
	}
	if h := r.git(t, "rev-list", "--count", "main"); h != "1" {
		t.Errorf("%s commits: the failed job must not run", h)
	}
}

// A job that stops fluxd every time it runs is given up after a few
// restarts.
func TestJobResumedTooOftenFails(t *testing.T) {
	r := newRemote(t, "cart")
	id := acceptOnly(t, r, release("cart", "nginx:2"))
	for i := 0; i < 3; i++ {
		// Each fluxd queues it again, and "stops" before running it.
		qi := newQueue(t, r.mirror(t), config(), jobs.WithResume(resumeRelease))
		if _, err := qi.Recover(context.Background()); err != nil {
			t.Fatal(err)
		}
		if s, err := qi.Status(context.Background(), id); err != nil || s.State != jobs.Queued {
			t.Fatalf("restart %d: %+v, %v", i+1, s, err)
		}
	}
	if s := restart(t, r, id, jobs.WithResume(resumeRelease)); s.State != jobs.Failed || !strings.Contains(s.Err, "stopped 4 times") {
		t.Fatalf("status %+v", s)
	}
}

// A job with nothing to change, and a job that failed, are known after a
// restart from the journal.
func TestEndsWithoutCommitSurviveRestart(t *testing.T) {
	r := newRemote(t, "cart")
	q := newQueue(t, r.mirror(t), config())
	stop := start(t, q)
	same, err := q.Submit(context.Background(), release("cart", "nginx:1"))
	if err != nil {
		t.Fatal(err)
	}
	bad := release("cart", "nginx:2")
	bad.Edit = func([]resource.File) (map[string][]byte, map[resource.ID]notes.WorkloadResult, error) {
		return nil, nil, errors.New("the manifest is odd")
	}
	failed, err := q.Submit(context.Background(), bad)
	if err != nil {
		t.Fatal(err)
	}
	if s := wait(t, q, same); s.State != jobs.Succeeded || s.Commit != "" {
		t.Fatalf("unchanged job %+v", s)
	}
	if s := wait(t, q, failed); s.State != jobs.Failed {
		t.Fatalf("failing job %+v", s)
	}
	stop()

	if s := restart(t, r, same, jobs.WithResume(resumeRelease)); s.State != jobs.Succeeded || s.Commit != "" || s.Results[workload("cart")].Status != notes.WorkloadSkipped {
		t.Errorf("unchanged job after restart %+v", s)
	}
	if s := restart(t, r, failed, jobs.WithResume(resumeRelease)); s.State != jobs.Failed || !strings.Contains(s.Err, "the manifest is odd") {
		t.Errorf("failed job after restart %+v", s)
	}
	if n := r.git(t, "rev-list", "--count", "main"); n != "1" {
		t.Errorf("%s commits, want 1: nothing runs again", n)
	}
}

// A push that lands the note and is then refused for the branch, because
// someone pushed: the retry removes the stray note, so no note is left on
// a commit that is not on the branch.
func TestRetryRemovesTheNoteOfTheAbandonedCommit(t *testing.T) {
	r := newRemote(t, "cart", "db")
	repo := &faultyRepo{Repo: r.mirror(t)}
	var once sync.Once
	repo.push = func(ctx context.Context, next func() error, refspecs []string) error {
		if !toBranch(refspecs) {
			return next()
		}
		err := jobs.ErrNonFastForward
		once.Do(func() {
			// The note lands; then someone else's commit beats ours.
			if perr := repo.pushOnly(ctx, refspecs[:1]); perr != nil {
				err = perr
				return
			}
			r.commit(t, "Their change", map[string]string{"deploy/db.yaml": manifest("db", "postgres:16")})
		})
		if err == nil || !errors.Is(err, jobs.ErrNonFastForward) {
			return err
		}
		if err := next(); err != nil {
			return err
		}
		return nil
	}
	q := newQueue(t, repo, config())
	start(t, q)
	id, err := q.Submit(context.Background(), release("cart", "nginx:2"))
	if err != nil {
		t.Fatal(err)
	}
	s := wait(t, q, id)
	if s.State != jobs.Succeeded || r.head(t) != s.Commit {
		t.Fatalf("status %+v, head %s", s, r.head(t))
	}
	all := r.notes(t)
	if len(all) != 1 || !strings.Contains(all[s.Commit], id) {
		t.Fatalf("notes %v: want only the note on %s", all, s.Commit)
	}
	if got := r.git(t, "show", "main:deploy/db.yaml"); !strings.Contains(got, "postgres:16") {
		t.Errorf("their change was lost:\n%s", got)
	}
}

// The commit lands but someone moved the notes ref under our push: the
// note is pushed again, so the commit keeps its record.
func TestCommitWithoutItsNoteIsRepaired(t *testing.T) {
	r := newRemote(t, "cart")
	seed := r.head(t)
	repo := &faultyRepo{Repo: r.mirror(t)}
	var once sync.Once
	repo.push = func(ctx context.Context, next func() error, refspecs []string) error {
		if !toBranch(refspecs) {
			return next()
		}
		var err error
		once.Do(func() {
			// Only the branch lands; another writer's note takes the ref.
			if err = repo.pushOnly(ctx, refspecs[1:]); err == nil {
				r.addNote(t, seed, "someone else's note")
				err = errors.New("notes ref rejected: failed to update ref")
			}
		})
		if err != nil {
			return err
		}
		return next()
	}
	q := newQueue(t, repo, config())
	start(t, q)
	id, err := q.Submit(context.Background(), release("cart", "nginx:2"))
	if err != nil {
		t.Fatal(err)
	}
	s := wait(t, q, id)
	if s.State != jobs.Succeeded || r.head(t) != s.Commit {
		t.Fatalf("status %+v", s)
	}
	all := r.notes(t)
	if len(all) != 2 || !strings.Contains(all[s.Commit], id) || all[seed] != "someone else's note" {
		t.Fatalf("notes %v", all)
	}
}

// A job cut short because fluxd stops is not ended in the journal: the
// next fluxd runs it.
func TestJobCutShortByShutdownRunsAgain(t *testing.T) {
	r := newRemote(t, "cart")
	repo := &faultyRepo{Repo: r.mirror(t)}
	started := make(chan struct{})
	var once sync.Once
	var fetches atomic.Int32
	armed := atomic.Bool{}
	repo.fetch = func(ctx context.Context, next func() error) error {
		// After Run starts, Recover fetches once; the second fetch is
		// the job's own, before it edits: the remote hangs there.
		if !armed.Load() || fetches.Add(1) != 2 {
			return next()
		}
		once.Do(func() { close(started) })
		<-ctx.Done()
		return ctx.Err()
	}
	q := newQueue(t, repo, config())
	id, err := q.Submit(context.Background(), release("cart", "nginx:2"))
	if err != nil {
		t.Fatal(err)
	}
	armed.Store(true)
	stop := start(t, q)
	<-started
	stop()
	if s, _ := q.Status(context.Background(), id); s.State != jobs.Failed || !strings.Contains(s.Err, "fluxd stopped while the job ran") {
		t.Fatalf("status as fluxd stops %+v", s)
	}
	for _, e := range r.journal(t) {
		if e.Event == notes.EventFailed {
			t.Fatalf("the journal ended the job: %+v", e)
		}
	}
	if s := restart(t, r, id, jobs.WithResume(resumeRelease)); s.State != jobs.Succeeded || s.Commit == "" || r.head(t) != s.Commit {
		t.Fatalf("after the restart %+v", s)
	}
}
