package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/fluxd/fluxd/kube/resource"
	"github.com/fluxd/fluxd/notes"
)

// Repo is what the queue needs of the git mirror.
type Repo interface {
	// Update runs fn with the mirror locked: no Fetch, Push or write by
	// anyone else may run between fn's calls to tx, and tx must not be used
	// after fn returns. Update returns fn's error. The queue also reads
	// through it.
	Update(ctx context.Context, fn func(tx Tx) error) error
}

// Tx is the locked mirror inside Repo.Update. Implementations map their
// errors to this package's sentinels (ErrNonFastForward, ErrNoChanges,
// ErrNotFound, ErrPathNotFound), keeping their own in the chain.
type Tx interface {
	// Fetch brings the branch and the notes refs up to date with the
	// remote, by force: local notes that were never pushed are lost.
	Fetch(ctx context.Context) error
	// Head is the commit at the tip of the branch, as last fetched or
	// pushed.
	Head() (string, error)
	// Files returns the manifests under paths at commit, sorted by path. A
	// path that is not in the commit is an ErrPathNotFound.
	Files(commit string, paths []string) ([]resource.File, error)
	// CommitFiles makes a commit on parent with files written (nil content:
	// deleted) and returns its ID, moving no ref. A commit that would
	// change nothing is an ErrNoChanges.
	CommitFiles(parent string, files map[string][]byte, message string, author, committer Signature) (string, error)
	// SetNote writes data as the note on commit in notesRef, replacing any.
	SetNote(notesRef, commit string, data []byte, sig Signature) error
	// RemoveNote removes the note on commit (a full ID) from notesRef;
	// ErrNotFound if there is none.
	RemoveNote(notesRef, commit string, sig Signature) error
	// Note reads the note on commit in notesRef; ErrNotFound if there is
	// none, or if the commit is not in the mirror.
	Note(notesRef, commit string) ([]byte, error)
	// Notes returns every note in notesRef by commit ID; empty if the ref
	// does not exist.
	Notes(notesRef string) (map[string][]byte, error)
	// Push pushes refspecs to the remote. A ref refused because the remote
	// moved on is an ErrNonFastForward. Of several refspecs some may land.
	Push(ctx context.Context, refspecs ...string) error
	// IsAncestor reports whether ancestor is commit or one of its
	// ancestors; ErrNotFound if either is not in the mirror.
	IsAncestor(ancestor, commit string) (bool, error)
}

// Errors a Tx maps its own to, so the queue can classify them.
var (
	ErrNonFastForward = errors.New("non-fast-forward")
	ErrNoChanges      = errors.New("no changes to commit")
	ErrNotFound       = errors.New("not found")
	ErrPathNotFound   = errors.New("path not found")
)

// Errors of the queue itself.
var (
	// ErrUnknownJob: no job with that ID is queued, running, remembered, or
	// recorded in the notes.
	ErrUnknownJob = errors.New("unknown job")
	// ErrReadOnly: fluxd runs with a read-only git repository.
	ErrReadOnly = errors.New("git repository is read-only (--git-readonly): fluxd makes no commits, so it runs no jobs")
	// ErrQueueFull: too many jobs are waiting; try again later.
	ErrQueueFull = errors.New("job queue is full")
	// ErrStopped: the queue has stopped (fluxd is shutting down).
	ErrStopped = errors.New("job queue stopped")
	// ErrDuplicateJob: a job with that ID is already known.
	ErrDuplicateJob = errors.New("duplicate job ID")
)

// Signature is the author or committer of a commit. A zero When is set to
// the time of the commit.
type Signature struct {
	Name, Email string
	When        time.Time
}

// Edit is the job-specific part of a job: given the manifests at the
// branch head (the files under the git paths), it returns the files to
// change (path -> new content; nil deletes), and what it did to each
// workload. It must be a pure function of its input: it runs again on the
// new head when an attempt is retried, and must not keep state between
// runs. It runs with the mirror locked, so it must not call the Queue or
// the mirror. An error fails the job; so does a panic.
type Edit func(files []resource.File) (changed map[string][]byte, results map[resource.ID]notes.WorkloadResult, err error)

// Job is one unit of work for the queue.
type Job struct {
	// ID is the job's ID; "" means a new random one (8-4-4-4-12 hex).
	ID string
	// Kind is the kind of job (notes.KindImage, KindPolicy, KindAuto, ...).
	Kind string
	// Spec is what was asked for, kept opaque in the job note.
	Spec  json.RawMessage
	Cause notes.Cause
	// Message is the commit message, already built by the caller.
	Message string
	// Author is the commit's author; a zero Name means the committer.
	Author Signature
	Edit   Edit
}

func (j Job) validate() error {
	var missing []string
	if j.Kind == "" {
		missing = append(missing, "kind")
	}
	if strings.TrimSpace(j.Message) == "" {
		missing = append(missing, "commit message")
	}
	if j.Edit == nil {
		missing = append(missing, "edit")
	}
	if len(missing) > 0 {
		return fmt.Errorf("job has no %s", strings.Join(missing, ", "))
	}
	if len(j.Spec) > 0 && !json.Valid(j.Spec) {
		return errors.New("job spec is not valid JSON")
	}
	return nil
}

// State is where a job is in its life.
type State string

// The states, as Flux v1's API names them.
const (
	Queued    State = "queued"
	Running   State = "running"
	Succeeded State = "succeeded"
	Failed    State = "failed"
)

// Status is what is known of a job.
type Status struct {
	ID    string
	State State
	// Err says why the job failed; "" otherwise.
	Err string
	// Commit is the job's commit on the branch (a full ID), once it
	// succeeded; "" if the job changed nothing.
	Commit  string
	Kind    string
	Spec    json.RawMessage
	Cause   notes.Cause
	Results map[resource.ID]notes.WorkloadResult
	// Started is when the worker started the job (zero when read back
	// from git); Finished is when the job finished, or made its commit.
	Started, Finished time.Time

	// recheck: the job failed after pushing a job note, so its commit may
	// be on the branch after all; Status looks in the notes again.
	recheck bool
}

// clone copies the maps and slices a caller might change.
func (s Status) clone() Status {
	s.Spec = append(json.RawMessage(nil), s.Spec...)
	s.Results = maps.Clone(s.Results)
	return s
}

// Config is the queue's fixed configuration.
type Config struct {
	// Branch is the branch jobs commit to.
	Branch string
	// Paths are the git paths holding manifests; none means the root.
	Paths []string
	// NotesRef holds the job notes; "" means notes.DefaultJobNotesRef. It
	// must be under refs/notes/, which the mirror fetches.
	NotesRef string
	// JournalRef holds the job journal (notes.JobEvent); "" means
	// notes.JobJournalRef("default"). It must be under refs/notes/ and
	// differ from NotesRef. Give each fluxd that shares a repository its
	// own (fluxd uses notes.JobJournalRef(cluster)).
	JournalRef string
	// Committer commits every job's commit and writes its note.
	Committer Signature
	// ReadOnly refuses every job with ErrReadOnly; Status still works.
	ReadOnly bool
	// MaxRetries is how many times a job is retried after a push refused
	// as non-fast-forward; 0 means 5.
	MaxRetries int
}

// DefaultMaxRetries is Config.MaxRetries when it is 0.
const DefaultMaxRetries = 5

func (c *Config) validate() error {
	if c.NotesRef == "" {
		c.NotesRef = notes.DefaultJobNotesRef
	}
	if !strings.HasPrefix(c.NotesRef, "refs/notes/") || len(c.NotesRef) == len("refs/notes/") {
		return fmt.Errorf("job notes ref %q must be refs/notes/<name>", c.NotesRef)
	}
	if c.JournalRef == "" {
		c.JournalRef = notes.JobJournalRef("default")
	}
	if !strings.HasPrefix(c.JournalRef, "refs/notes/") || len(c.JournalRef) == len("refs/notes/") || c.JournalRef == c.NotesRef {
		return fmt.Errorf("job journal ref %q must be refs/notes/<name>, other than the job notes ref %q", c.JournalRef, c.NotesRef)
	}
	if c.Branch == "" || strings.HasPrefix(c.Branch, "refs/") || strings.ContainsAny(c.Branch, " \t\n:~^?*[\\") {
		return fmt.Errorf("invalid branch %q for jobs", c.Branch)
	}
	if c.MaxRetries < 0 {
		return fmt.Errorf("job retries (%d) must not be negative", c.MaxRetries)
	}
	if c.MaxRetries == 0 {
		c.MaxRetries = DefaultMaxRetries
	}
	if !c.ReadOnly && (c.Committer.Name == "" || c.Committer.Email == "") {
		return errors.New("jobs need a committer name and email (--git-user, --git-email)")
	}
	if len(c.Paths) == 0 {
		c.Paths = []string{""}
	}
	return nil
}

// Option is a tunable of the queue.
type Option func(*options) error

type options struct {
	log       zerolog.Logger
	now       func() time.Time
	history   int
	maxQueued int
	onDone    func(Status)
	resume    func(kind string, spec json.RawMessage) (Edit, error)
}

func defaultOptions() options {
	return options{log: zerolog.Nop(), now: time.Now, history: 100, maxQueued: 100, onDone: func(Status) {}}
}

// WithLogger sets the logger (default: discard).
func WithLogger(l zerolog.Logger) Option {
	return func(o *options) error { o.log = l; return nil }
}

// WithClock sets the clock (default: time.Now), for tests.
func WithClock(now func() time.Time) Option {
	return func(o *options) error {
		if now == nil {
			return errors.New("nil clock")
		}
		o.now = now
		return nil
	}
}

// WithHistory sets how many finished jobs are kept in memory (default
// 100, as Flux v1); older ones are read back from the notes.
func WithHistory(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("job history %d must be at least 1", n)
		}
		o.history = n
		return nil
	}
}

// WithMaxQueued sets how many jobs may wait at once (default 100); Submit
// refuses more with ErrQueueFull.
func WithMaxQueued(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("job queue length %d must be at least 1", n)
		}
		o.maxQueued = n
		return nil
	}
}

// WithResume lets the queue run again, after a restart, a job that was
// accepted but never ended: resume rebuilds the job's Edit from its kind
// and spec. Without it such jobs are reported failed.
func WithResume(resume func(kind string, spec json.RawMessage) (Edit, error)) Option {
	return func(o *options) error {
		if resume == nil {
			return errors.New("nil resume function")
		}
		o.resume = resume
		return nil
	}
}

// WithOnDone calls f with the final status of every job the worker
// finishes (succeeded or failed), from the worker's goroutine, e.g. to send
// events. The next job waits for f to return.
func WithOnDone(f func(Status)) Option {
	return func(o *options) error {
		if f == nil {
			return errors.New("nil job callback")
		}
		o.onDone = f
		return nil
	}
}
