package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/fluxd/fluxd/kube/resource"
	"github.com/fluxd/fluxd/notes"
	"github.com/fluxd/fluxd/sync/jobs"
)

func TestJobCommitsNotesAndPushes(t *testing.T) {
	r := newRemote(t, "cart", "db")
	seed := r.head(t)
	q := newQueue(t, r.mirror(t), config())

	job := release("cart", "nginx:2")
	job.ID = "6e0c41aa-0000-4000-8000-000000000001"
	edit := job.Edit
	var during jobs.Status
	job.Edit = func(files []resource.File) (map[string][]byte, map[resource.ID]notes.WorkloadResult, error) {
		during, _ = q.Status(context.Background(), job.ID)
		return edit(files)
	}
	id, err := q.Submit(context.Background(), job)
	if err != nil || id != job.ID {
		t.Fatalf("submit: %q, %v", id, err)
	}
	if s, err := q.Status(context.Background(), id); err != nil || s.State != jobs.Queued {
		t.Fatalf("before Run: %+v, %v; want queued", s, err)
	}
	start(t, q)
	s := wait(t, q, id)
	if during.State != jobs.Running {
		t.Errorf("status during the edit: %q, want running", during.State)
	}
	if s.State != jobs.Succeeded || s.Err != "" || len(s.Commit) != 40 {
		t.Fatalf("status %+v", s)
	}
	wantResults := map[resource.ID]notes.WorkloadResult{workload("cart"): {Status: notes.WorkloadSuccess,
		Containers: []notes.ContainerUpdate{{Container: "app", Current: "nginx:1", Target: "nginx:2"}}}}
	if !reflect.DeepEqual(s.Results, wantResults) || s.Kind != notes.KindImage || string(s.Spec) != string(job.Spec) || s.Cause != job.Cause {
		t.Errorf("status %+v", s)
	}

	// The commit is on the remote's branch, on top of the seed, as asked.
	if h := r.head(t); h != s.Commit {
		t.Fatalf("remote main at %s, want the job's commit %s", h, s.Commit)
	}
	if p := r.git(t, "rev-parse", s.Commit+"^"); p != seed {
		t.Errorf("parent %s, want %s", p, seed)
	}
	if got := r.git(t, "show", "main:deploy/cart.yaml"); got != strings.TrimSpace(manifest("cart", "nginx:2")) {
		t.Errorf("deploy/cart.yaml:\n%s", got)
	}
	if got := r.git(t, "log", "-1", "--format=%an <%ae>|%cn <%ce>|%s", "main"); got != "Kim <kim@example.com>|fluxd <fluxd@example.com>|Release nginx:2 to default:deployment/cart" {
		t.Errorf("commit: %s", got)
	}

	// The note is readable with plain git in a clone.
	work := r.clone(t)
	rec, err := notes.DecodeJobRecord([]byte(runGit(t, work, "notes", "--ref=flux", "show", s.Commit)))
	if err != nil {
		t.Fatal(err)
	}
	if rec.JobID != id || rec.Kind != notes.KindImage || !reflect.DeepEqual(rec.Results, wantResults) || rec.Cause != job.Cause {
		t.Errorf("note %+v", rec)
	}
	if log := runGit(t, work, "log", "-1", "--notes=flux"); !strings.Contains(log, `"jobID": "`+id+`"`) {
		t.Errorf("git log --notes=flux does not show the job:\n%s", log)
	}
}

func TestJobWithNoChange(t *testing.T) {
	r := newRemote(t, "cart")
	head := r.head(t)
	q := newQueue(t, r.mirror(t), config())
	start(t, q)

	// An edit that writes what is already there.
	same, err := q.Submit(context.Background(), release("cart", "nginx:1"))
	if err != nil {
		t.Fatal(err)
	}
	s := wait(t, q, same)
	want := map[resource.ID]notes.WorkloadResult{workload("cart"): {Status: notes.WorkloadSkipped, Error: notes.ReasonNoChange}}
	if s.State != jobs.Succeeded || s.Commit != "" || s.Err != "" || !reflect.DeepEqual(s.Results, want) {
		t.Fatalf("status %+v", s)
	}

	// An edit that finds nothing to do.
	missing, err := q.Submit(context.Background(), release("nope", "nginx:2"))
	if err != nil {
		t.Fatal(err)
	}
	s = wait(t, q, missing)
	want = map[resource.ID]notes.WorkloadResult{workload("nope"): {Status: notes.WorkloadSkipped, Error: notes.ReasonNotInRepo}}
	if s.State != jobs.Succeeded || s.Commit != "" || !reflect.DeepEqual(s.Results, want) {
		t.Fatalf("status %+v", s)
	}

	if h := r.head(t); h != head {
		t.Errorf("remote main moved to %s", h)
	}
	if n := r.notes(t); len(n) != 0 {
		t.Errorf("notes written: %v", n)
	}
	// Still readable from memory, though it has no note.
	if s, err := q.Status(context.Background(), same); err != nil || s.State != jobs.Succeeded {
		t.Errorf("later status %+v, %v", s, err)
	}
}

// Someone pushes to the branch between our fetch and our push: their
// commit is kept, and our edit is redone on top of it.
func TestConcurrentPushIsMergedAndEditRedone(t *testing.T) {
	r := newRemote(t, "cart", "db")
	q := newQueue(t, r.mirror(t), config())
	start(t, q)

	var theirs string
	var calls atomic.Int32
	job := release("cart", "nginx:2")
	edit := job.Edit
	job.Edit = func(files []resource.File) (map[string][]byte, map[resource.ID]notes.WorkloadResult, error) {
		switch calls.Add(1) {
		case 1:
			theirs = r.commit(t, "Their change", map[string]string{"deploy/db.yaml": manifest("db", "postgres:16")})
		case 2:
			if !hasFile(files, "deploy/db.yaml", manifest("db", "postgres:16")) {
				t.Error("the retried edit did not see the new head")
			}
		}
		return edit(files)
	}
	id, err := q.Submit(context.Background(), job)
	if err != nil {
		t.Fatal(err)
	}
	s := wait(t, q, id)
	if s.State != jobs.Succeeded || calls.Load() != 2 {
		t.Fatalf("status %+v after %d edits", s, calls.Load())
	}
	if h := r.head(t); h != s.Commit {
		t.Fatalf("remote main at %s, want %s", h, s.Commit)
	}
	if p := r.git(t, "rev-parse", s.Commit+"^"); p != theirs {
		t.Errorf("our commit's parent is %s, want their commit %s", p, theirs)
	}
	if got := r.git(t, "show", "main:deploy/db.yaml"); !strings.Contains(got, "postgres:16") {
		t.Errorf("their change was lost:\n%s", got)
	}
	if got := r.git(t, "show", "main:deploy/cart.yaml"); !strings.Contains(got, "nginx:2") {
		t.Errorf("our change is missing:\n%s", got)
	}
	if n := r.git(t, "rev-list", "--count", "main"); n != "3" {
		t.Errorf("%s commits on main, want 3: no duplicate", n)
	}
	// The first attempt's push was refused as a whole: the only note is
	// the one on our commit on the branch.
	all := r.notes(t)
	if len(all) != 1 || !strings.Contains(all[s.Commit], id) {
		t.Errorf("notes %v", all)
	}
	fresh := newQueue(t, r.mirror(t), config())
	if s2, err := fresh.Status(context.Background(), id); err != nil || s2.State != jobs.Succeeded || s2.Commit != s.Commit {
		t.Errorf("status after a restart %+v, %v", s2, err)
	}
}

func hasFile(files []resource.File, path, content string) bool {
	for _, f := range files {
		if f.Path == path {
			return string(f.Data) == content
		}
	}
	return false
}

// Someone adds a job note between our fetch and our push: both notes stay.
func TestConcurrentNoteIsKept(t *testing.T) {
	r := newRemote(t, "cart")
	seed := r.head(t)
	// Notes exist already, so ours would replace theirs if pushed by force.
	r.addNote(t, seed, "an old note")
	q := newQueue(t, r.mirror(t), config())
	start(t, q)

	var calls atomic.Int32
	job := release("cart", "nginx:2")
	edit := job.Edit
	job.Edit = func(files []resource.File) (map[string][]byte, map[resource.ID]notes.WorkloadResult, error) {
		if calls.Add(1) == 1 {
			other := r.commit(t, "Other", map[string]string{"other.txt": "x\n"})
			r.addNote(t, other, "their note")
		}
		return edit(files)
	}
	id, err := q.Submit(context.Background(), job)
	if err != nil {
		t.Fatal(err)
	}
	s := wait(t, q, id)
	if s.State != jobs.Succeeded {
		t.Fatalf("status %+v", s)
	}
	all := r.notes(t)
	var texts []string
	for _, n := range all {
		texts = append(texts, n)
	}
	if len(all) != 3 || all[seed] != "an old note" || !strings.Contains(strings.Join(texts, "\n"), "their note") || !strings.Contains(all[s.Commit], id) {
		t.Errorf("notes %q, want the old one, theirs and ours", all)
	}
}

// A note created on the remote while we work, when there was none before.
func TestConcurrentFirstNoteIsKept(t *testing.T) {
	r := newRemote(t, "cart")
	seed := r.head(t)
	q := newQueue(t, r.mirror(t), config())
	start(t, q)
	var calls atomic.Int32
	job := release("cart", "nginx:2")
	edit := job.Edit
	job.Edit = func(files []resource.File) (map[string][]byte, map[resource.ID]notes.WorkloadResult, error) {
		if calls.Add(1) == 1 {
			r.addNote(t, seed, "their note")
		}
		return edit(files)
	}
	id, err := q.Submit(context.Background(), job)
	if err != nil {
		t.Fatal(err)
	}
	if s := wait(t, q, id); s.State != jobs.Succeeded {
		t.Fatalf("status %+v", s)
	}
	if all := r.notes(t); len(all) != 2 || all[seed] != "their note" {
		t.Errorf("notes %q", all)
	}
}

func TestTwentyConcurrentSubmits(t *testing.T) {
	const n = 20
	var names []string
	for i := range n {
		names = append(names, fmt.Sprintf("w%02d", i))
	}
	r := newRemote(t, names...)
	seed := r.head(t)
	q := newQueue(t, r.mirror(t), config())
	start(t, q)

	ids := make([]string, n)
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := q.Submit(context.Background(), release(name, "nginx:2"))
			if err != nil {
				t.Error(err)
			}
			ids[i] = id
		}()
	}
	wg.Wait()
	commits := map[string]string{} // commit -> job ID
	for _, id := range ids {
		s := wait(t, q, id)
		if s.State != jobs.Succeeded || s.Commit == "" {
			t.Fatalf("job %s: %+v", id, s)
		}
		commits[s.Commit] = id
	}
	if len(commits) != n {
		t.Fatalf("%d distinct commits, want %d", len(commits), n)
	}
	if got := r.git(t, "rev-list", "--count", seed+"..main"); got != fmt.Sprint(n) {
		t.Errorf("%s commits after the seed, want %d", got, n)
	}
	all := r.notes(t)
	if len(all) != n {
		t.Errorf("%d notes, want %d", len(all), n)
	}
	for commit, id := range commits {
		rec, err := notes.DecodeJobRecord([]byte(all[commit]))
		if err != nil || rec.JobID != id {
			t.Errorf("note on %s: %+v, %v; want job %s", commit, rec, err, id)
		}
	}
	for _, name := range names {
		if got := r.git(t, "show", "main:deploy/"+name+".yaml"); !strings.Contains(got, "nginx:2") {
			t.Errorf("edit of %s lost", name)
		}
	}
}

func TestStatusAfterRestartAndBeyondHistory(t *testing.T) {
	r := newRemote(t, "cart", "db")
	q := newQueue(t, r.mirror(t), config(), jobs.WithHistory(1))
	stop := start(t, q)
	first := release("cart", "nginx:2")
	first.Cause.Message = "hotfix"
	id1, err := q.Submit(context.Background(), first)
	if err != nil {
		t.Fatal(err)
	}
	s1 := wait(t, q, id1)
	id2, err := q.Submit(context.Background(), release("db", "nginx:3"))
	if err != nil {
		t.Fatal(err)
	}
	s2 := wait(t, q, id2)
	// With room for one finished job in memory, the first comes from its note.
	if s, err := q.Status(context.Background(), id1); err != nil || !sameStatus(s, s1) {
		t.Errorf("beyond history: %+v, %v; want %+v", s, err, s1)
	}
	stop()

	// A new fluxd, on a new mirror, never fetched.
	q2 := newQueue(t, r.mirror(t), config())
	for _, want := range []jobs.Status{s1, s2} {
		s, err := q2.Status(context.Background(), want.ID)
		if err != nil || !sameStatus(s, want) {
			t.Errorf("after restart: %+v, %v; want %+v", s, err, want)
		}
	}
	if _, err := q2.Status(context.Background(), "no-such-job"); !errors.Is(err, jobs.ErrUnknownJob) {
		t.Errorf("unknown job after restart: %v", err)
	}
}

// sameStatus compares what a status read from a note must keep.
func sameStatus(a, b jobs.Status) bool {
	var sa, sb any
	_ = json.Unmarshal(a.Spec, &sa)
	_ = json.Unmarshal(b.Spec, &sb)
	return a.ID == b.ID && a.State == b.State && a.Commit == b.Commit && a.Err == b.Err && a.Kind == b.Kind &&
		a.Cause == b.Cause && reflect.DeepEqual(a.Results, b.Results) && reflect.DeepEqual(sa, sb)
}

func TestUnknownJob(t *testing.T) {
	r := newRemote(t, "cart")
	q := newQueue(t, r.mirror(t), config())
	start(t, q)
	for _, id := range []string{"", "6e0c41aa-0000-4000-8000-00000000dead"} {
		if _, err := q.Status(context.Background(), id); !errors.Is(err, jobs.ErrUnknownJob) {
			t.Errorf("%q: %v, want ErrUnknownJob", id, err)
		}
	}
}

func TestReadOnlyRefusesJobs(t *testing.T) {
	r := newRemote(t, "cart")
	cfg := config()
	cfg.ReadOnly = true
	cfg.Committer = jobs.Signature{}
	q := newQueue(t, r.mirror(t), cfg)
	start(t, q)
	if _, err := q.Submit(context.Background(), release("cart", "nginx:2")); !errors.Is(err, jobs.ErrReadOnly) || !strings.Contains(err.Error(), "read-only") {
		t.Fatalf("submit: %v", err)
	}
	if _, err := q.Status(context.Background(), "x"); !errors.Is(err, jobs.ErrUnknownJob) {
		t.Errorf("status: %v", err)
	}
}

// The crash case: the note is pushed, the commit never reaches the branch.
func TestNotePushedButBranchPushFails(t *testing.T) {
	r := newRemote(t, "cart")
	seed := r.head(t)
	broken := errors.New("connection reset by peer")
	// The push lands the note but not the commit, and reports an error.
	repo := &faultyRepo{Repo: r.mirror(t)}
	var once sync.Once
	repo.push = func(ctx context.Context, next func() error, refspecs []string) error {
		if !toBranch(refspecs) {
			return next()
		}
		var err error
		once.Do(func() { err = repo.pushOnly(ctx, refspecs[:1]) })
		if err != nil {
			return err
		}
		return broken
	}
	q := newQueue(t, repo, config())
	stop := start(t, q)
	id, err := q.Submit(context.Background(), release("cart", "nginx:2"))
	if err != nil {
		t.Fatal(err)
	}
	s := wait(t, q, id)
	if s.State != jobs.Failed || !strings.Contains(s.Err, "push commit") || !strings.Contains(s.Err, broken.Error()) || s.Commit != "" {
		t.Fatalf("status %+v", s)
	}
	stop()
	if h := r.head(t); h != seed {
		t.Fatalf("main moved to %s", h)
	}
	// The note of the commit that never reached the branch was removed.
	if all := r.notes(t); len(all) != 0 {
		t.Fatalf("notes %v, want none: no note without its commit on the branch", all)
	}

	// After a restart, Status says the job failed, and why, from the
	// journal.
	q2 := newQueue(t, r.mirror(t), config())
	if _, err := q2.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	s2, err := q2.Status(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if s2.State != jobs.Failed || s2.Commit != "" || !strings.Contains(s2.Err, broken.Error()) {
		t.Errorf("status after restart %+v", s2)
	}

	// The next job works.
	start(t, q2)
	id3, err := q2.Submit(context.Background(), release("cart", "nginx:3"))
	if err != nil {
		t.Fatal(err)
	}
	if s := wait(t, q2, id3); s.State != jobs.Succeeded || r.head(t) != s.Commit {
		t.Fatalf("next job %+v", s)
	}
	if all := r.notes(t); len(all) != 1 {
		t.Errorf("notes %v", all)
	}
	if s, _ := q2.Status(context.Background(), id); s.State != jobs.Failed {
		t.Errorf("abandoned job now %+v", s)
	}
}

// The push of the commit lands, but its answer is lost: the job succeeds,
// with no second commit.
func TestBranchPushAnswerLost(t *testing.T) {
	r := newRemote(t, "cart")
	repo := &faultyRepo{Repo: r.mirror(t), push: func(_ context.Context, next func() error, refspecs []string) error {
		if err := next(); err != nil || !toBranch(refspecs) {
			return err
		}
		return errors.New("connection reset by peer")
	}}
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
	if n := r.git(t, "rev-list", "--count", "main"); n != "2" {
		t.Errorf("%s commits", n)
	}
}

// The push of the commit lands, its answer is lost, and the fetch that
// would tell fails too: the job fails at first, and Status tells the truth
// once the mirror knows.
func TestBranchPushAnswerLostUntold(t *testing.T) {
	r := newRemote(t, "cart")
	var lost atomic.Bool
	repo := &faultyRepo{Repo: r.mirror(t)}
	repo.push = func(_ context.Context, next func() error, refspecs []string) error {
		if err := next(); err != nil || !toBranch(refspecs) {
			return err
		}
		lost.Store(true)
		return errors.New("connection reset by peer")
	}
	repo.fetch = func(_ context.Context, next func() error) error {
		if lost.Load() {
			return errors.New("remote unreachable")
		}
		return next()
	}
	reported := make(chan jobs.Status, 1)
	q := newQueue(t, repo, config(), jobs.WithOnDone(func(s jobs.Status) { reported <- s }))
	start(t, q)
	id, err := q.Submit(context.Background(), release("cart", "nginx:2"))
	if err != nil {
		t.Fatal(err)
	}
	if s := <-reported; s.State != jobs.Failed || !strings.Contains(s.Err, "connection reset") {
		t.Fatalf("worker's verdict %+v", s)
	}
	s := wait(t, q, id)
	if head := r.head(t); s.State != jobs.Succeeded || s.Commit != head {
		t.Fatalf("status %+v, remote main at %s", s, head)
	}
}

func TestRetriesRunOut(t *testing.T) {
	r := newRemote(t, "cart", "db")
	cfg := config()
	cfg.MaxRetries = 2
	q := newQueue(t, r.mirror(t), cfg)
	start(t, q)
	var calls atomic.Int32
	job := release("cart", "nginx:2")
	edit := job.Edit
	job.Edit = func(files []resource.File) (map[string][]byte, map[resource.ID]notes.WorkloadResult, error) {
		n := calls.Add(1)
		r.commit(t, "Busy", map[string]string{"deploy/db.yaml": manifest("db", fmt.Sprintf("postgres:%d", n))})
		return edit(files)
	}
	id, err := q.Submit(context.Background(), job)
	if err != nil {
		t.Fatal(err)
	}
	s := wait(t, q, id)
	if s.State != jobs.Failed || calls.Load() != 3 || !strings.Contains(s.Err, "gave up after 3 attempts") || !strings.Contains(s.Err, "non-fast-forward") {
		t.Fatalf("status %+v after %d attempts", s, calls.Load())
	}
	if got := r.git(t, "show", "main:deploy/cart.yaml"); strings.Contains(got, "nginx:2") {
		t.Error("the failed job's change is on main")
	}
}

func TestFailingEdits(t *testing.T) {
	r := newRemote(t, "cart")
	head := r.head(t)
	q := newQueue(t, r.mirror(t), config())
	start(t, q)
	for _, tc := range []struct {
		name string
		edit jobs.Edit
		want string
	}{
		{"error", func([]resource.File) (map[string][]byte, map[resource.ID]notes.WorkloadResult, error) {
			return nil, nil, errors.New("workload is locked")
		}, "workload is locked"},
		{"panic", func([]resource.File) (map[string][]byte, map[resource.ID]notes.WorkloadResult, error) {
			panic("boom")
		}, "job edit failed: boom"},
		{"outside paths", func([]resource.File) (map[string][]byte, map[resource.ID]notes.WorkloadResult, error) {
			return map[string][]byte{"README.md": []byte("x")}, nil, nil
		}, "outside the git paths"},
		{"escapes", func([]resource.File) (map[string][]byte, map[resource.ID]notes.WorkloadResult, error) {
			return map[string][]byte{"../x": []byte("x")}, nil, nil
		}, "not a path in the repository"},
	} {
		job := release("cart", "nginx:2")
		job.Edit = tc.edit
		id, err := q.Submit(context.Background(), job)
		if err != nil {
			t.Fatal(err)
		}
		if s := wait(t, q, id); s.State != jobs.Failed || !strings.Contains(s.Err, tc.want) {
			t.Errorf("%s: %+v", tc.name, s)
		}
	}
	if r.head(t) != head {
		t.Error("a failed job moved main")
	}
}

func TestSubmitChecks(t *testing.T) {
	r := newRemote(t, "cart")
	q := newQueue(t, r.mirror(t), config(), jobs.WithMaxQueued(2))
	job := release("cart", "nginx:2")
	job.ID = "one"
	if _, err := q.Submit(context.Background(), job); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Submit(context.Background(), job); !errors.Is(err, jobs.ErrDuplicateJob) {
		t.Errorf("same ID: %v", err)
	}
	job.ID = ""
	if _, err := q.Submit(context.Background(), job); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Submit(context.Background(), job); !errors.Is(err, jobs.ErrQueueFull) {
		t.Errorf("full: %v", err)
	}
	bad := job
	bad.Message, bad.Edit = "", nil
	if _, err := q.Submit(context.Background(), bad); err == nil || !strings.Contains(err.Error(), "commit message, edit") {
		t.Errorf("incomplete job: %v", err)
	}

	// Stopping fails the waiting jobs and refuses new ones.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := q.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if s, err := q.Status(context.Background(), "one"); err != nil || s.State != jobs.Failed || !strings.Contains(s.Err, "stopped") {
		t.Errorf("waiting job after stop: %+v, %v", s, err)
	}
	if _, err := q.Submit(context.Background(), job); !errors.Is(err, jobs.ErrStopped) {
		t.Errorf("after stop: %v", err)
	}
}

func TestGeneratedIDs(t *testing.T) {
	r := newRemote(t)
	q := newQueue(t, r.mirror(t), config())
	seen := map[string]bool{}
	for range 50 {
		id, err := q.Submit(context.Background(), release("cart", "nginx:2"))
		if err != nil {
			t.Fatal(err)
		}
		if len(id) != 36 || strings.Count(id, "-") != 4 || seen[id] {
			t.Fatalf("ID %q", id)
		}
		seen[id] = true
	}
}

func TestConfigChecks(t *testing.T) {
	repo := newRemote(t).mirror(t)
	for _, tc := range []struct {
		edit func(*jobs.Config)
		want string
	}{
		{func(c *jobs.Config) { c.NotesRef = "refs/heads/flux" }, "refs/notes/<name>"},
		{func(c *jobs.Config) { c.Branch = "" }, "invalid branch"},
		{func(c *jobs.Config) { c.MaxRetries = -1 }, "negative"},
		{func(c *jobs.Config) { c.Committer.Email = "" }, "committer"},
	} {
		cfg := config()
		tc.edit(&cfg)
		if _, err := jobs.New(repo, cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want %q", err, tc.want)
		}
	}
	if _, err := jobs.New(repo, config(), jobs.WithHistory(0)); err == nil {
		t.Error("history 0 accepted")
	}
}
