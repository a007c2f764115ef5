package jobs

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Queue runs jobs one at a time. Make one with New, start its worker with
// Run, and give it jobs with Submit from any goroutine.
type Queue struct {
	repo Repo
	cfg  Config
	o    options
	wake chan struct{}

	mu      sync.Mutex
	pending []*entry          // waiting to run, oldest first
	active  map[string]*entry // queued or running, by ID
	done    history           // finished, newest last
	running bool              // Run has started
	stopped bool              // Run has returned

	index   noteIndex
	journal journal
	resumed atomic.Bool // Recover has queued again the jobs that never ended
}

// entry is a job and its status while it is in memory.
type entry struct {
	job    Job
	status Status
}

// New makes a queue. It validates cfg and the options.
func New(repo Repo, cfg Config, opts ...Option) (*Queue, error) {
	if repo == nil {
		return nil, errors.New("job queue: no git repository")
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("job queue: %w", err)
	}
	o := defaultOptions()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, fmt.Errorf("job queue: %w", err)
		}
	}
	q := &Queue{
		repo:   repo,
		cfg:    cfg,
		o:      o,
		wake:   make(chan struct{}, 1),
		active: map[string]*entry{},
		done:   newHistory(o.history),
	}
	q.index.q = q
	return q, nil
}

// Submit records job in the job journal in git and queues it, and returns
// its ID; the job's status is then "queued". Once Submit has returned, the
// job is not lost: if fluxd stops before the job ends, the next fluxd runs
// it (see Recover). Submit fails if the repository is read-only
// (ErrReadOnly), the job is incomplete, its ID is in use (ErrDuplicateJob),
// too many jobs are waiting (ErrQueueFull), the queue has stopped
// (ErrStopped), or the journal cannot be pushed.
func (q *Queue) Submit(ctx context.Context, job Job) (string, error) {
	if q.cfg.ReadOnly {
		return "", ErrReadOnly
	}
	if err := job.validate(); err != nil {
		return "", err
	}
	if job.ID == "" {
		job.ID = newJobID()
	}
	if err := q.admit(job.ID); err != nil {
		return "", err
	}
	if err := q.appendEvents(ctx, q.queuedEvent(job)); err != nil {
		return "", err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if err := q.admitLocked(job.ID); err != nil {
		// Journalled but refused: end it there too, so that no later
		// fluxd runs it.
		go func() {
			_ = q.journalEnd(context.Background(), Status{ID: job.ID, State: Failed, Err: err.Error()})
		}()
		return "", err
	}
	e := &entry{job: job, status: Status{
		ID: job.ID, State: Queued, Kind: job.Kind, Spec: job.Spec, Cause: job.Cause,
	}}
	q.pending = append(q.pending, e)
	q.active[job.ID] = e
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return job.ID, nil
}

// admit checks that a job with id may be queued now.
func (q *Queue) admit(id string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.admitLocked(id)
}

func (q *Queue) admitLocked(id string) error {
	switch {
	case q.stopped:
		return ErrStopped
	case len(q.pending) >= q.o.maxQueued:
		return fmt.Errorf("%w: %d jobs are waiting, try again later", ErrQueueFull, len(q.pending))
	case q.active[id] != nil || q.done.has(id):
		return fmt.Errorf("%w %q", ErrDuplicateJob, id)
	}
	return nil
}

// Status returns what is known of job id: queued or running from memory;
// succeeded or failed from memory or, for older jobs and after a restart,
// from the job notes. An ID found nowhere is an ErrUnknownJob.
func (q *Queue) Status(ctx context.Context, id string) (Status, error) {
	s, ok := q.inMemory(id)
	if ok && !s.recheck {
		return s, nil
	}
	if ok {
		// It failed after pushing its note: if the commit reached the
		// branch after all, it succeeded; otherwise the failure stands,
		// with its own reason.
		if ns, err := q.index.status(ctx, id); err == nil && ns.State == Succeeded {
			q.remember(ns)
			return ns.clone(), nil
		}
		return s, nil
	}
	if id == "" {
		return Status{}, fmt.Errorf("%w: no job ID given", ErrUnknownJob)
	}
	s, err := q.index.status(ctx, id)
	if errors.Is(err, ErrUnknownJob) {
		// No job note: the journal knows how a job without a commit ended.
		s, err = q.journalStatus(ctx, id)
	}
	if err != nil {
		return Status{}, err
	}
	if s.State == Succeeded {
		q.remember(s)
	}
	return s.clone(), nil
}

// inMemory is job id's status if the queue holds it: queued, running, or
// among the finished jobs it remembers.
func (q *Queue) inMemory(id string) (Status, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if e := q.active[id]; e != nil {
		return e.status.clone(), true
	}
	s, ok := q.done.get(id)
	return s.clone(), ok
}

// remember keeps a succeeded status read from the notes in memory: a
// commit on the branch stays there.
func (q *Queue) remember(s Status) {
	q.mu.Lock()
	q.done.add(s)
	q.mu.Unlock()
}

// Run runs jobs, one at a time in the order they were submitted, until ctx
// is done. It first calls Recover. It returns nil when ctx is done; jobs
// still queued then fail ("fluxd stopped before the job ran"), and Submit
// refuses new ones. Run may be called once.
func (q *Queue) Run(ctx context.Context) error {
	q.mu.Lock()
	if q.running {
		q.mu.Unlock()
		return errors.New("job queue: Run called twice")
	}
	q.running = true
	q.mu.Unlock()
	defer q.stop()

	recovered := q.recover(ctx)
	for ctx.Err() == nil {
		if e := q.next(); e != nil {
			q.run(ctx, e)
			continue
		}
		var retry <-chan time.Time
		if !recovered {
			retry = time.After(recoverRetry)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-q.wake:
		case <-retry:
			recovered = q.recover(ctx)
		}
	}
	return nil
}

// recoverRetry is how soon Run tries Recover again after it failed.
const recoverRetry = 10 * time.Second

// recover runs Recover, logging a failure; it reports whether it worked.
func (q *Queue) recover(ctx context.Context) bool {
	if _, err := q.Recover(ctx); err != nil {
		if ctx.Err() == nil {
			q.o.log.Warn().Err(err).Msgf("job queue: start-up check of the job notes and journal failed; new jobs run anyway, and the check is tried again in %s", recoverRetry)
		}
		return false
	}
	return true
}

// next takes the oldest waiting job and marks it running; nil if none, or
// if the queue is stopping.
func (q *Queue) next() *entry {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.pending) == 0 {
		return nil
	}
	e := q.pending[0]
	q.pending[0] = nil
	q.pending = q.pending[1:]
	e.status.State = Running
	return e
}

// stop fails the jobs still waiting, and refuses new ones.
func (q *Queue) stop() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.stopped = true
	for _, e := range q.pending {
		e.status.State, e.status.Err, e.status.Finished = Failed, "fluxd stopped before the job ran", q.o.now()
		delete(q.active, e.job.ID)
		q.done.add(e.status)
	}
	q.pending = nil
}

// finish records a job's final status and tells the callback.
func (q *Queue) finish(e *entry, s Status) {
	s.Finished = q.o.now()
	q.mu.Lock()
	e.status = s
	delete(q.active, s.ID)
	q.done.add(s)
	q.mu.Unlock()
	if s.State == Succeeded && s.Commit != "" {
		q.index.add(s.ID, s.Commit, s.Finished)
	}
	q.o.onDone(s.clone())
}

// newJobID returns a random ID in Flux v1's form, a version 4 UUID.
func newJobID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails: see crypto/rand.Read
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// history is the last finished jobs, by ID.
type history struct {
	max   int
	order []string // oldest first
	byID  map[string]Status
}

func newHistory(max int) history {
	return history{max: max, byID: map[string]Status{}}
}

func (h *history) has(id string) bool { _, ok := h.byID[id]; return ok }

func (h *history) get(id string) (Status, bool) { s, ok := h.byID[id]; return s, ok }

func (h *history) add(s Status) {
	if _, ok := h.byID[s.ID]; !ok {
		h.order = append(h.order, s.ID)
	}
	h.byID[s.ID] = s
	for len(h.order) > h.max {
		delete(h.byID, h.order[0])
		h.order = h.order[1:]
	}
}
