package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/fluxd/fluxd/notes"
)

// maxResumes is how many times a restarted fluxd runs a job again that
// never ended, before it gives up on it: a job that stops fluxd each time
// it runs must not stop it forever.
const maxResumes = 3

// journal is the queue's view of the job journal (see notes.JobEvent): the
// events of every job, by ID, read from the journal ref when first needed
// and kept up to date by the events this queue appends.
type journal struct {
	mu    sync.Mutex
	byJob map[string][]notes.JobEvent // nil until loaded
	order []string                    // job IDs, by their first event
}

func (j *journal) add(events ...notes.JobEvent) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.byJob == nil {
		return // loaded later, with these events in it
	}
	for _, e := range events {
		if _, ok := j.byJob[e.JobID]; !ok {
			j.order = append(j.order, e.JobID)
		}
		j.byJob[e.JobID] = append(j.byJob[e.JobID], e)
	}
}

func (j *journal) events(id string) ([]notes.JobEvent, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	evs, ok := j.byJob[id]
	return slices.Clone(evs), ok
}

func (j *journal) loaded() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.byJob != nil
}

// load reads the whole journal from the mirror (fetching first if it has
// not been fetched yet).
func (q *Queue) loadJournal(ctx context.Context) error {
	var all map[string][]byte
	err := q.repo.Update(ctx, func(tx Tx) error {
		if err := q.index.fetchOnce(ctx, tx); err != nil {
			return err
		}
		var err error
		all, err = tx.Notes(q.cfg.JournalRef)
		return err
	})
	if err != nil {
		return fmt.Errorf("read the job journal %s: %w", q.cfg.JournalRef, err)
	}
	var events []notes.JobEvent
	skipped := 0
	for _, data := range all {
		evs, n := notes.DecodeJobEvents(data)
		events = append(events, evs...)
		skipped += n
	}
	if skipped > 0 {
		q.o.log.Warn().Int("lines", skipped).Str("ref", q.cfg.JournalRef).Msg("job journal lines this fluxd cannot read were skipped")
	}
	slices.SortStableFunc(events, func(a, b notes.JobEvent) int { return a.Time.Compare(b.Time) })
	byJob := map[string][]notes.JobEvent{}
	var order []string
	for _, e := range events {
		if _, ok := byJob[e.JobID]; !ok {
			order = append(order, e.JobID)
		}
		byJob[e.JobID] = append(byJob[e.JobID], e)
	}
	q.journal.mu.Lock()
	q.journal.byJob, q.journal.order = byJob, order
	q.journal.mu.Unlock()
	return nil
}

// appendEvents pushes events to the journal ref, as lines of the note on
// the branch head, and adds them to the in-memory journal. A push refused
// because the ref moved on is retried on the fetched ref.
func (q *Queue) appendEvents(ctx context.Context, events ...notes.JobEvent) error {
	sig := q.cfg.Committer
	sig.When = q.o.now()
	err := q.repo.Update(ctx, func(tx Tx) error {
		if err := q.index.fetchOnce(ctx, tx); err != nil {
			return err
		}
		return q.pushNotes(ctx, tx, q.cfg.JournalRef, func() error {
			head, err := tx.Head()
			if err != nil {
				return fmt.Errorf("branch %s: %w", q.cfg.Branch, err)
			}
			data, err := tx.Note(q.cfg.JournalRef, head)
			if err != nil && !errors.Is(err, ErrNotFound) {
				return err
			}
			for _, e := range events {
				if data, err = notes.AppendJobEvent(data, e); err != nil {
					return err
				}
			}
			return tx.SetNote(q.cfg.JournalRef, head, data, sig)
		})
	})
	if err != nil {
		return fmt.Errorf("record in the job journal %s: %w", q.cfg.JournalRef, err)
	}
	q.journal.add(events...)
	return nil
}

// queuedEvent is the journal's record of an accepted job.
func (q *Queue) queuedEvent(job Job) notes.JobEvent {
	e := notes.JobEvent{JobID: job.ID, Event: notes.EventQueued, Time: q.o.now(), Kind: job.Kind,
		Spec: job.Spec, Message: job.Message}
	if job.Cause != (notes.Cause{}) {
		c := job.Cause
		e.Cause = &c
	}
	if job.Author.Name != "" {
		e.Author = &notes.Author{Name: job.Author.Name, Email: job.Author.Email}
	}
	return e
}

// journalEnd records the end of a job that left no job note: it failed,
// or it changed nothing.
func (q *Queue) journalEnd(ctx context.Context, s Status) error {
	e := notes.JobEvent{JobID: s.ID, Time: q.o.now(), Results: s.Results}
	if s.State == Failed {
		e.Event, e.Error = notes.EventFailed, s.Err
	} else {
		e.Event = notes.EventUnchanged
	}
	// The end is recorded even as fluxd stops: it is what tells the next
	// fluxd not to run the job again.
	return q.appendEvents(context.WithoutCancel(ctx), e)
}

// journalStatus reads job id's status from the journal: how it ended, or,
// for a job that never ended and is not in this process, that it failed
// because fluxd stopped.
func (q *Queue) journalStatus(ctx context.Context, id string) (Status, error) {
	if !q.journal.loaded() {
		if err := q.loadJournal(ctx); err != nil {
			return Status{}, err
		}
	}
	evs, ok := q.journal.events(id)
	if !ok {
		return Status{}, fmt.Errorf("%w %q", ErrUnknownJob, id)
	}
	s := Status{ID: id}
	for _, e := range evs {
		switch e.Event {
		case notes.EventQueued:
			s.Kind, s.Spec = e.Kind, e.Spec
			if e.Cause != nil {
				s.Cause = *e.Cause
			}
		case notes.EventFailed:
			s.State, s.Err, s.Results, s.Finished = Failed, e.Error, e.Results, e.Time
		case notes.EventUnchanged:
			s.State, s.Results, s.Finished = Succeeded, e.Results, e.Time
		}
	}
	if s.State == "" && !q.resumed.Load() {
		// Recover has not looked at it yet: it will run it again.
		s.State = Queued
	}
	if s.State == "" {
		// Recover may have queued it again since Status looked in
		// memory: it queues before it marks itself done, so look again.
		if m, ok := q.inMemory(id); ok {
			return m, nil
		}
		s.State = Failed
		s.Err = "fluxd stopped before the job finished, and it was not run again; it made no commit. Run it again"
	}
	return s, nil
}

// resume queues again, after a restart, the jobs in the journal that never
// ended and made no commit; it fails the ones it cannot run again. It
// returns the IDs of the jobs queued again.
func (q *Queue) resume(ctx context.Context) ([]string, error) {
	if err := q.loadJournal(ctx); err != nil {
		return nil, err
	}
	q.journal.mu.Lock()
	order := slices.Clone(q.journal.order)
	q.journal.mu.Unlock()
	var (
		resumed []string
		events  []notes.JobEvent
		entries []*entry
	)
	for _, id := range order {
		evs, _ := q.journal.events(id)
		queued, resumes, ended := notes.JobEvent{}, 0, false
		for _, e := range evs {
			switch e.Event {
			case notes.EventQueued:
				queued = e
			case notes.EventResumed:
				resumes++
			case notes.EventFailed, notes.EventUnchanged:
				ended = true
			}
		}
		if ended || queued.JobID == "" || q.known(id) {
			continue
		}
		switch s, err := q.index.status(ctx, id); {
		case err == nil && s.State == Succeeded:
			continue // it made its commit: the job note says so
		case err == nil:
			// Its note is on a commit that never reached the branch: the
			// job did not happen. The note goes, and the job runs again.
			refs, err := q.index.lookup(ctx, id)
			if err != nil {
				return nil, err
			}
			commits := make([]string, 0, len(refs))
			for _, r := range refs {
				commits = append(commits, r.commit)
			}
			q.removeOrphans(ctx, commits, q.o.log.With().Str("job", id).Logger())
		case !errors.Is(err, ErrUnknownJob):
			return nil, err
		}
		job, reason := q.rebuild(queued, resumes)
		now := q.o.now()
		if reason != "" {
			q.o.log.Warn().Str("job", id).Str("kind", queued.Kind).Msg(reason)
			events = append(events, notes.JobEvent{JobID: id, Event: notes.EventFailed, Time: now, Error: reason})
			continue
		}
		q.o.log.Info().Str("job", id).Str("kind", queued.Kind).Msg("job accepted before fluxd stopped and never finished: running it now")
		events = append(events, notes.JobEvent{JobID: id, Event: notes.EventResumed, Time: now})
		entries = append(entries, &entry{job: job, status: Status{ID: id, State: Queued, Kind: job.Kind, Spec: job.Spec, Cause: job.Cause}})
		resumed = append(resumed, id)
	}
	if len(events) == 0 {
		q.resumed.Store(true)
		return nil, nil
	}
	if err := q.appendEvents(ctx, events...); err != nil {
		return nil, err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	defer q.resumed.Store(true)
	for _, e := range entries {
		if q.active[e.job.ID] != nil || q.done.has(e.job.ID) {
			continue
		}
		q.pending = append(q.pending, e)
		q.active[e.job.ID] = e
	}
	return resumed, nil
}

// known reports whether job id is queued, running or remembered here.
func (q *Queue) known(id string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.active[id] != nil || q.done.has(id)
}

// rebuild makes the job of a queued event runnable again, or says why it
// cannot be.
func (q *Queue) rebuild(e notes.JobEvent, resumes int) (Job, string) {
	if resumes >= maxResumes {
		return Job{}, fmt.Sprintf("fluxd stopped %d times while this job was queued or running; it is not run again, and it made no commit", resumes+1)
	}
	if q.o.resume == nil {
		return Job{}, "fluxd stopped before the job finished, and it made no commit. Run it again"
	}
	edit, err := q.o.resume(e.Kind, e.Spec)
	if err != nil {
		return Job{}, fmt.Sprintf("fluxd stopped before the job finished, and cannot run it again: %v. It made no commit", err)
	}
	job := Job{ID: e.JobID, Kind: e.Kind, Spec: append(json.RawMessage(nil), e.Spec...), Message: e.Message, Edit: edit}
	if e.Cause != nil {
		job.Cause = *e.Cause
	}
	if e.Author != nil {
		job.Author = Signature{Name: e.Author.Name, Email: e.Author.Email}
	}
	if err := job.validate(); err != nil {
		return Job{}, fmt.Sprintf("fluxd stopped before the job finished, and cannot run it again: %v. It made no commit", err)
	}
	return job, ""
}
