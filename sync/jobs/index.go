package jobs

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fluxd/fluxd/notes"
)

// rescanEvery is how long an index stays fresh enough to answer "no such
// job" without reading the notes again.
const rescanEvery = 2 * time.Second

// recoverWindow is how far back Recover looks for notes whose commit never
// reached the branch: the ones a crash of the previous run left.
const recoverWindow = 24 * time.Hour

// noteIndex finds the job notes of a job ID in the notes ref. It is built
// from the mirror's notes when first needed, rebuilt when asked about an ID
// it does not know (at most every rescanEvery), and told by the worker of
// the notes it pushes.
type noteIndex struct {
	q       *Queue
	fetched atomic.Bool // the mirror was fetched since the queue was made

	mu    sync.Mutex
	byJob map[string][]noteRef // nil until built
	built time.Time
}

// noteRef is one job note: the commit it is on, and the record's time.
type noteRef struct {
	commit string
	time   time.Time
}

// found is one job note read back, and whether its commit is on the branch.
type found struct {
	commit   string
	record   notes.JobRecord
	onBranch bool
}

// fetchOnce fetches if the mirror has not been fetched since the queue was
// made: until then its branch and notes may be missing or old.
func (x *noteIndex) fetchOnce(ctx context.Context, tx Tx) error {
	if x.fetched.Load() {
		return nil
	}
	if err := tx.Fetch(ctx); err != nil {
		return fmt.Errorf("git fetch: %w", err)
	}
	x.fetched.Store(true)
	return nil
}

// add records a note the worker pushed, if the index is built.
func (x *noteIndex) add(id, commit string, at time.Time) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.byJob == nil || slices.ContainsFunc(x.byJob[id], func(r noteRef) bool { return r.commit == commit }) {
		return
	}
	x.byJob[id] = append(x.byJob[id], noteRef{commit: commit, time: at})
}

// lookup returns the notes of job id.
func (x *noteIndex) lookup(ctx context.Context, id string) ([]noteRef, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.byJob != nil {
		if refs := x.byJob[id]; len(refs) > 0 || x.q.o.now().Sub(x.built) < rescanEvery {
			return slices.Clone(refs), nil
		}
	}
	if err := x.rebuild(ctx); err != nil {
		return nil, err
	}
	return slices.Clone(x.byJob[id]), nil
}

// rebuild reads every note in the notes ref, fetching first if the mirror
// has not been fetched since the queue was made. x.mu is held.
func (x *noteIndex) rebuild(ctx context.Context) error {
	var all map[string][]byte
	err := x.q.repo.Update(ctx, func(tx Tx) error {
		if err := x.fetchOnce(ctx, tx); err != nil {
			return err
		}
		var err error
		all, err = tx.Notes(x.q.cfg.NotesRef)
		return err
	})
	if err != nil {
		return fmt.Errorf("read job notes in %s: %w", x.q.cfg.NotesRef, err)
	}
	byJob := map[string][]noteRef{}
	for commit, data := range all {
		if id, at, ok := peekJob(data); ok {
			byJob[id] = append(byJob[id], noteRef{commit: commit, time: at})
		}
	}
	x.byJob, x.built = byJob, x.q.o.now()
	return nil
}

// peekJob reads the job ID and time of a note without decoding all of it,
// so that a job note this build cannot fully read (a newer version) is
// still found, and reported as such by Status.
func peekJob(data []byte) (id string, at time.Time, ok bool) {
	var head struct {
		Type  string `json:"type"`
		JobID string `json:"jobID"`
		Time  string `json:"time"`
	}
	if json.Unmarshal(data, &head) != nil || head.JobID == "" || (head.Type != notes.TypeJob && head.Type != "") {
		return "", time.Time{}, false
	}
	at, _ = time.Parse(time.RFC3339Nano, head.Time) // Flux v1's notes have none
	return head.JobID, at, true
}

// recent returns the IDs of jobs with a note written since.
func (x *noteIndex) recent(since time.Time) []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	var ids []string
	for id, refs := range x.byJob {
		if slices.ContainsFunc(refs, func(r noteRef) bool { return !r.time.Before(since) }) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// status reads job id back from its notes: succeeded if one of them is on
// a commit on the branch, else failed with the reason.
func (x *noteIndex) status(ctx context.Context, id string) (Status, error) {
	refs, err := x.lookup(ctx, id)
	if err != nil {
		return Status{}, fmt.Errorf("look for job %s in the notes: %w", id, err)
	}
	if len(refs) == 0 {
		return Status{}, fmt.Errorf("%w %q", ErrUnknownJob, id)
	}
	var notesFound []found
	ref := x.q.cfg.NotesRef
	err = x.q.repo.Update(ctx, func(tx Tx) error {
		head, err := tx.Head()
		if err != nil {
			return fmt.Errorf("branch %s: %w", x.q.cfg.Branch, err)
		}
		var all map[string][]byte // every note, read only if needed
		for _, r := range refs {
			data, err := tx.Note(ref, r.commit)
			if errors.Is(err, ErrNotFound) {
				// Either the mirror lacks the commit (it never reached the
				// branch), which Note may refuse, or the notes ref was
				// rewritten since it was read: look in the whole ref.
				if all == nil {
					if all, err = tx.Notes(ref); err != nil {
						return err
					}
				}
				if data = all[r.commit]; data == nil {
					continue
				}
				err = nil
			}
			if err != nil {
				return err
			}
			rec, err := notes.DecodeJobRecord(data)
			if err != nil {
				return fmt.Errorf("job %s: note on %s: %w", id, short(r.commit), err)
			}
			if rec.JobID != id {
				continue
			}
			on, err := tx.IsAncestor(r.commit, head)
			if errors.Is(err, ErrNotFound) {
				on, err = false, nil // a commit this mirror never had: never pushed
			}
			if err != nil {
				return fmt.Errorf("job %s: is %s on branch %s: %w", id, short(r.commit), x.q.cfg.Branch, err)
			}
			notesFound = append(notesFound, found{commit: r.commit, record: rec, onBranch: on})
		}
		return nil
	})
	if err != nil {
		return Status{}, err
	}
	if len(notesFound) == 0 {
		return Status{}, fmt.Errorf("%w %q", ErrUnknownJob, id)
	}
	return x.q.statusFromNotes(notesFound), nil
}

// statusFromNotes decides a job's status from its notes. Several notes
// for one job come from retried attempts: the one whose commit is on the
// branch wins; if none is, the job failed.
func (q *Queue) statusFromNotes(fs []found) Status {
	// Newest first, and by commit for a stable answer.
	slices.SortFunc(fs, func(a, b found) int {
		if c := b.record.Time.Compare(a.record.Time); c != 0 {
			return c
		}
		return cmp.Compare(a.commit, b.commit)
	})
	pick := fs[0]
	if i := slices.IndexFunc(fs, func(f found) bool { return f.onBranch }); i >= 0 {
		pick = fs[i]
	}
	r := pick.record
	s := Status{ID: r.JobID, Kind: r.Kind, Spec: r.Spec, Cause: r.Cause, Finished: r.Time}
	if pick.onBranch {
		s.State, s.Commit, s.Results = Succeeded, pick.commit, r.Results
		return s
	}
	s.State = Failed
	s.Err = fmt.Sprintf("the job's commit %s is not on branch %s: fluxd stopped, or its push of the commit failed, "+
		"after it had pushed the job note (or the branch was rewritten since). The change is not in git: run the job again",
		short(pick.commit), q.cfg.Branch)
	return s
}

// Recover prepares the queue after fluxd starts: it fetches, indexes the
// job notes, and returns the jobs of the last day whose note was pushed but
// whose commit is not on the branch (a note an earlier fluxd could not
// remove, or a branch rewritten since), logging each; Status reports them
// as failed, with the reason. Then it reads the job journal and queues
// again the jobs that were accepted but never ended and made no commit
// (see WithResume), or fails them there with the reason. Run calls Recover
// before the first job, and again later if it failed; calling it again is
// harmless.
func (q *Queue) Recover(ctx context.Context) ([]Status, error) {
	if err := q.repo.Update(ctx, func(tx Tx) error { return tx.Fetch(ctx) }); err != nil {
		return nil, fmt.Errorf("git fetch: %w", err)
	}
	q.index.fetched.Store(true)
	q.index.mu.Lock()
	err := q.index.rebuild(ctx)
	q.index.mu.Unlock()
	if err != nil {
		return nil, err
	}
	resumed, err := q.resume(ctx)
	if err != nil {
		return nil, fmt.Errorf("jobs accepted before fluxd stopped are not run again yet: %w", err)
	}
	if len(resumed) > 0 {
		q.o.log.Info().Strs("jobs", resumed).Msg("running again the jobs accepted before fluxd stopped")
	}
	var abandoned []Status
	for _, id := range q.index.recent(q.o.now().Add(-recoverWindow)) {
		if slices.Contains(resumed, id) {
			continue
		}
		s, err := q.index.status(ctx, id)
		if err != nil {
			q.o.log.Warn().Err(err).Str("job", id).Msg("cannot read the job's note")
			continue
		}
		if s.State == Failed {
			q.o.log.Warn().Str("job", id).Str("kind", s.Kind).Msg(s.Err)
			abandoned = append(abandoned, s)
		}
	}
	return abandoned, nil
}
