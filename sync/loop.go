package sync

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	gosync "sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/fluxd/fluxd/kube/resource"
	"github.com/fluxd/fluxd/notes"
)

// Status is a snapshot of the loop, for the API and for tests.
type Status struct {
	Head       string    // branch head at the last fetch
	LastFetch  time.Time // when the last fetch worked
	FetchError string    // why the last fetch failed; "" when it worked
	Applied    string    // commit the sync tag marks (or would, read-only)
	LastSync   time.Time // when the last sync finished
	LastRecord *notes.SyncRecord
	// LastError is the last whole-sync error (fetch, apply, push), cleared
	// by the next success.
	LastError   string
	PendingPush bool
}

// Loop is the sync loop. Make one with New and start it with Run.
type Loop struct {
	cfg     Config
	repo    Repo
	cluster Cluster
	log     zerolog.Logger
	now     func() time.Time
	onSync  func(notes.SyncRecord)

	trigger chan struct{}

	mu     gosync.Mutex
	status Status

	// Owned by the Run goroutine.
	tagRead   bool
	applied   string // commit the tag marks
	attempted string // last commit applied, successfully or not
	nextForce time.Time
	pending   *pendingWrite
	backoff   time.Duration
}

// pendingWrite is a sync record (and maybe a tag move) not yet pushed.
type pendingWrite struct {
	record  notes.SyncRecord
	moveTag bool
}

// Option configures a Loop.
type Option func(*Loop)

// WithLogger sets the logger (default: discard).
func WithLogger(l zerolog.Logger) Option { return func(lp *Loop) { lp.log = l } }

// WithClock sets the clock (default: time.Now), for tests.
func WithClock(now func() time.Time) Option { return func(lp *Loop) { lp.now = now } }

// WithOnSync calls f after every sync that reached the cluster, with its
// record, from the loop's goroutine. f must not block.
func WithOnSync(f func(notes.SyncRecord)) Option { return func(lp *Loop) { lp.onSync = f } }

// New makes a loop. It validates cfg.
func New(cfg Config, repo Repo, cluster Cluster, opts ...Option) (*Loop, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = time.Second
	}
	if len(cfg.Paths) == 0 {
		cfg.Paths = []string{""}
	}
	l := &Loop{
		cfg: cfg, repo: repo, cluster: cluster,
		log: zerolog.Nop(), now: time.Now, onSync: func(notes.SyncRecord) {},
		trigger: make(chan struct{}, 1),
	}
	for _, o := range opts {
		o(l)
	}
	return l, nil
}

// Trigger asks for a fetch and sync now. It never blocks; triggers that
// arrive while one is pending are merged.
func (l *Loop) Trigger() {
	select {
	case l.trigger <- struct{}{}:
	default:
	}
}

// Status returns a snapshot of the loop's state.
func (l *Loop) Status() Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.status
	if s.LastRecord != nil {
		r := *s.LastRecord
		s.LastRecord = &r
	}
	return s
}

func (l *Loop) setStatus(f func(*Status)) {
	l.mu.Lock()
	f(&l.status)
	l.mu.Unlock()
}

// Run runs the loop until ctx is done. It returns nil then: every fault on
// the way is logged, shown in Status and retried.
func (l *Loop) Run(ctx context.Context) error {
	l.nextForce = l.now().Add(l.cfg.SyncInterval)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-l.trigger:
		case <-timer.C:
		}
		wait := l.cfg.PollInterval
		if err := l.Step(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			l.setStatus(func(s *Status) { s.LastError = err.Error() })
			l.backoff = min(max(2*l.backoff, l.cfg.RetryInterval), l.cfg.PollInterval)
			wait = l.backoff
		} else {
			l.backoff = 0
			l.setStatus(func(s *Status) { s.LastError = "" })
		}
		if force := l.nextForce.Sub(l.now()); force < wait {
			wait = max(force, 0)
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wait)
	}
}

// Step does one round: fetch, and if the head moved or drift correction is
// due, apply and record. Run calls it; tests may call it directly.
func (l *Loop) Step(ctx context.Context) error {
	if err := l.repo.Fetch(ctx); err != nil {
		l.log.Error().Err(err).Msg("git fetch failed; the cluster is left as it is and the fetch is retried")
		l.setStatus(func(s *Status) { s.FetchError = err.Error() })
		return fmt.Errorf("git fetch: %w", err)
	}
	fetched := l.now()
	head, err := l.repo.Head()
	if err != nil {
		l.log.Error().Err(err).Msg("cannot read the branch head")
		return fmt.Errorf("branch head: %w", err)
	}
	l.setStatus(func(s *Status) { s.Head, s.LastFetch, s.FetchError = head, fetched, "" })
	if !l.tagRead {
		if err := l.readTag(); err != nil {
			return err
		}
	}
	if l.pending != nil {
		if err := l.write(ctx); err != nil {
			return err
		}
	}
	force := !l.now().Before(l.nextForce)
	if head == l.attempted && !force {
		return nil
	}
	return l.sync(ctx, head, force)
}

// readTag learns from the sync tag which commit is applied, so a restart
// does not re-apply what is already there.
func (l *Loop) readTag() error {
	tag := notes.SyncTag(l.cfg.Cluster)
	commit, err := l.repo.Tag(tag)
	switch {
	case errors.Is(err, ErrNotFound):
		l.log.Info().Str("tag", tag).Msg("no sync tag yet: this is the first sync of this cluster")
	case err != nil:
		l.log.Error().Err(err).Str("tag", tag).Msg("cannot read the sync tag")
		return fmt.Errorf("read sync tag %s: %w", tag, err)
	default:
		l.log.Info().Str("tag", tag).Str("commit", commit).Msg("sync tag read: this commit is already applied")
		l.applied, l.attempted = commit, commit
		l.setStatus(func(s *Status) { s.Applied = commit })
		if b, err := l.repo.Note(notes.SyncNotesRef(l.cfg.Cluster), commit); err == nil {
			if r, err := notes.DecodeSyncRecord(b); err == nil {
				l.setStatus(func(s *Status) { s.LastRecord, s.LastSync = &r, r.Time })
			}
		}
	}
	l.tagRead = true
	return nil
}

// sync applies the manifests at head and records the outcome.
func (l *Loop) sync(ctx context.Context, head string, force bool) error {
	log := l.log.With().Str("commit", short(head)).Bool("drift_correction", force && head == l.attempted).Logger()
	start := l.now()
	files, missing := l.readFiles(head)
	blockPrune := ""
	if len(missing) > 0 {
		blockPrune = fmt.Sprintf("%d git path(s) could not be read", len(missing))
	}
	cs, err := l.cluster.Apply(ctx, files, force, blockPrune)
	if err != nil {
		log.Error().Err(err).Msg("sync failed: nothing was recorded and the sync will be retried")
		return fmt.Errorf("apply %s: %w", short(head), err)
	}
	cs.ParseErrors = append(missing, cs.ParseErrors...)
	if cs.PruneBlocked == "" {
		cs.PruneBlocked = blockPrune
	}
	previous := l.Status().LastRecord
	record := notes.NewSyncRecord(l.cfg.Cluster, head, l.now(), l.now().Sub(start), cs)
	l.logResult(log, record, cs)

	newCommit := head != l.attempted
	l.attempted = head
	if force {
		l.nextForce = l.now().Add(l.cfg.SyncInterval)
	}
	l.setStatus(func(s *Status) { s.LastRecord, s.LastSync = &record, record.Time })
	l.onSync(record)

	moveTag := record.OK() && head != l.applied
	if !newCommit && !moveTag && !changed(previous, record) {
		return nil // a drift pass that found nothing: nothing to record
	}
	if l.cfg.ReadOnly {
		if moveTag {
			l.applied = head
			l.setStatus(func(s *Status) { s.Applied = head })
		}
		return nil
	}
	l.pending = &pendingWrite{record: record, moveTag: moveTag}
	return l.write(ctx)
}

// readFiles reads each git path at commit. A path that cannot be read is
// returned as a file error: it blocks pruning, but the other paths still sync.
func (l *Loop) readFiles(commit string) ([]resource.File, []resource.FileError) {
	var (
		files   []resource.File
		missing []resource.FileError
	)
	for _, p := range l.cfg.Paths {
		fs, err := l.repo.Files(commit, []string{p})
		if err != nil {
			l.log.Error().Err(err).Str("path", p).Str("commit", short(commit)).Msg("cannot read git path; its objects are not applied and nothing is pruned")
			missing = append(missing, resource.FileError{Path: p, Error: err.Error()})
			continue
		}
		files = append(files, fs...)
	}
	return files, missing
}

func (l *Loop) logResult(log zerolog.Logger, r notes.SyncRecord, cs resource.ChangeSet) {
	for _, c := range cs.Changes {
		switch c.Action {
		case resource.Created, resource.Configured, resource.Pruned:
			log.Info().Str("object", c.ID.String()).Str("file", c.Source).Str("action", string(c.Action)).Msg("")
		}
	}
	for _, e := range r.Errors {
		log.Error().Str("file", e.Path).Str("object", e.Object).Str("error", e.Error).Msg("manifest not applied")
	}
	ev := log.Info()
	if !r.OK() {
		ev = log.Warn()
	}
	ev.Int("applied", r.Counts.Applied).Int("unchanged", r.Counts.Unchanged).Int("pruned", r.Counts.Pruned).
		Int("skipped", r.Counts.Skipped).Int("failed", r.Counts.Failed).Str("prune_blocked", r.PruneBlocked).
		Int64("ms", r.DurationMS).Msg("sync done")
}

// changed reports whether a sync record says something the previous one
// did not, so a drift pass that changed or failed something is recorded.
func changed(prev *notes.SyncRecord, r notes.SyncRecord) bool {
	if prev == nil || prev.Commit != r.Commit {
		return true
	}
	return r.Counts.Applied > 0 || r.Counts.Pruned > 0 || r.Counts.Failed != prev.Counts.Failed ||
		!reflect.DeepEqual(r.Errors, prev.Errors)
}

// write records l.pending in git: the note and, if the sync was clean, the
// tag, pushed together. If our notes ref moved on the remote (another writer
// for this cluster), it fetches theirs and writes ours again. A failed write
// stays pending and is retried on the next step.
func (l *Loop) write(ctx context.Context) error {
	p := l.pending
	data, err := p.record.Encode()
	if err != nil {
		return err
	}
	w := Write{NotesRef: notes.SyncNotesRef(l.cfg.Cluster), Commit: p.record.Commit, Note: data}
	if p.moveTag {
		w.Tag, w.TagMessage = notes.SyncTag(l.cfg.Cluster), tagMessage(p.record)
	}
	for attempt := 0; ; attempt++ {
		err = l.repo.Record(ctx, w)
		if err == nil || !errors.Is(err, ErrNonFastForward) || attempt == 2 {
			break
		}
		if err = l.repo.Fetch(ctx); err != nil {
			break
		}
	}
	if err != nil {
		l.setStatus(func(s *Status) { s.PendingPush = true })
		l.log.Error().Err(err).Str("commit", short(p.record.Commit)).Str("notes_ref", w.NotesRef).Str("tag", w.Tag).
			Msg("push of the sync record failed; the cluster is synced, and the push is retried")
		return fmt.Errorf("push sync record: %w", err)
	}
	if p.moveTag {
		l.applied = p.record.Commit
	}
	l.pending = nil
	l.setStatus(func(s *Status) { s.PendingPush, s.Applied = false, l.applied })
	return nil
}

func tagMessage(r notes.SyncRecord) string {
	return fmt.Sprintf("Sync of %s to cluster %s at %s\n\n%d applied, %d unchanged, %d pruned, %d skipped, %d failed.\n",
		short(r.Commit), r.Cluster, r.Time.Format(time.RFC3339),
		r.Counts.Applied, r.Counts.Unchanged, r.Counts.Pruned, r.Counts.Skipped, r.Counts.Failed)
}

func short(commit string) string {
	if len(commit) > 7 {
		return commit[:7]
	}
	return commit
}
