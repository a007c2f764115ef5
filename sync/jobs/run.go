package jobs

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path"
	"sort"
	"strings"

	"github.com/rs/zerolog"

	"github.com/fluxd/fluxd/kube/resource"
	"github.com/fluxd/fluxd/notes"
)

// outcome is what an attempt did.
type outcome struct {
	commit  string // "" when nothing changed
	results map[resource.ID]notes.WorkloadResult
	// uncertain is a commit whose push failed in a way that left unknown
	// whether it landed: Status looks again later.
	uncertain string
	// orphan is a commit whose note landed on the remote but which did
	// not reach the branch: the next attempt removes the note.
	orphan string
}

// run runs one job to the end and records its status.
func (q *Queue) run(ctx context.Context, e *entry) {
	job := e.job
	log := q.o.log.With().Str("job", job.ID).Str("kind", job.Kind).Logger()
	log.Info().Msg("job started")
	s := Status{ID: job.ID, Kind: job.Kind, Spec: job.Spec, Cause: job.Cause, Started: q.o.now()}
	out, uncertain, err := q.execute(ctx, job, log)
	switch {
	case err != nil:
		s.State, s.Err = Failed, err.Error()
		// A commit whose push had an unknown outcome may be on the branch
		// after all: Status looks again.
		for _, c := range uncertain {
			q.index.add(job.ID, c, q.o.now())
		}
		s.recheck = len(uncertain) > 0
		log.Error().Err(err).Msg("job failed")
	case out.commit == "":
		s.State, s.Results = Succeeded, out.results
		log.Info().Msg("job done: nothing to change")
	default:
		s.State, s.Commit, s.Results = Succeeded, out.commit, out.results
		log.Info().Str("commit", out.commit).Str("branch", q.cfg.Branch).Msg("job done: commit and job note pushed")
	}
	switch {
	case s.State == Failed && ctx.Err() != nil:
		// fluxd is stopping: the job did not end, it was cut short. The
		// journal leaves it open, so the next fluxd runs it again.
		log.Info().Msg("fluxd is stopping: the job runs again when fluxd starts")
	case s.Commit == "" && !s.recheck:
		// The job's end is not in a job note: the journal keeps it.
		if err := q.journalEnd(ctx, s); err != nil {
			log.Warn().Err(err).Msg("could not record the job's end in the job journal: after a restart it may run again")
		}
	}
	q.finish(e, s)
}

// execute runs attempts until one succeeds, one fails for a reason other
// than the remote moving on, or the retries are used up. It also returns
// the commits whose push had an unknown outcome.
func (q *Queue) execute(ctx context.Context, job Job, log zerolog.Logger) (outcome, []string, error) {
	var uncertain, orphans []string
	for attempt := 1; ; attempt++ {
		out, err := q.attempt(ctx, job, orphans, log)
		if out.uncertain != "" {
			uncertain = append(uncertain, out.uncertain)
		}
		if out.orphan != "" {
			orphans = append(orphans, out.orphan)
		}
		if err == nil {
			return out, uncertain, nil
		}
		retry := errors.Is(err, ErrNonFastForward) && ctx.Err() == nil && attempt <= q.cfg.MaxRetries
		if !retry && len(orphans) > 0 {
			q.removeOrphans(ctx, orphans, log)
		}
		switch {
		case ctx.Err() != nil:
			return outcome{}, uncertain, fmt.Errorf("fluxd stopped while the job ran: %w", err)
		case !errors.Is(err, ErrNonFastForward):
			return outcome{}, uncertain, err
		case !retry:
			return outcome{}, uncertain, fmt.Errorf("gave up after %d attempts, as the remote moved on during each: %w", attempt, err)
		}
		log.Info().Err(err).Int("attempt", attempt).Msg("the remote moved on since the fetch: redoing the job on its new head")
	}
}

// attempt does the job once, under one lock of the mirror: fetch, edit the
// head's manifests, commit, note, and push the note and the commit in one
// push. See the package documentation for what a failed push leaves.
func (q *Queue) attempt(ctx context.Context, job Job, orphans []string, log zerolog.Logger) (out outcome, err error) {
	err = q.repo.Update(ctx, func(tx Tx) error {
		if err := tx.Fetch(ctx); err != nil {
			return fmt.Errorf("git fetch: %w", err)
		}
		q.index.fetched.Store(true)
		head, err := tx.Head()
		if err != nil {
			return fmt.Errorf("branch %s: %w", q.cfg.Branch, err)
		}
		files, err := q.readFiles(tx, head, log)
		if err != nil {
			return err
		}
		changed, results, err := runEdit(job.Edit, files)
		if err != nil {
			return err
		}
		if err := q.checkPaths(changed); err != nil {
			return err
		}
		out.results = results
		if len(changed) == 0 {
			out.results = noChange(results)
			return nil
		}
		now := q.o.now()
		committer := q.cfg.Committer
		committer.When = now
		author := job.Author
		if author.Name == "" {
			author = committer
		}
		if author.When.IsZero() {
			author.When = now
		}
		commit, err := tx.CommitFiles(head, changed, job.Message, author, committer)
		if errors.Is(err, ErrNoChanges) {
			out.results = noChange(results)
			return nil
		}
		if err != nil {
			return fmt.Errorf("commit on %s: %w", short(head), err)
		}
		data, err := notes.NewJobRecord(job.ID, job.Kind, job.Spec, job.Cause, now, results).Encode()
		if err != nil {
			return err
		}
		// The notes of earlier attempts' commits, which never reached the
		// branch, go in the same push.
		if err := q.dropNotes(tx, orphans, head, committer); err != nil {
			return err
		}
		if err := tx.SetNote(q.cfg.NotesRef, commit, data, committer); err != nil {
			return fmt.Errorf("write job note: %w", err)
		}
		// One push for both refs: the remote checks and applies them
		// together, and libgit2 sends nothing if either is behind.
		pushErr := tx.Push(ctx, q.cfg.NotesRef, commit+":refs/heads/"+q.cfg.Branch)
		if pushErr == nil {
			out.commit = commit
			return nil
		}
		return q.afterFailedPush(ctx, tx, commit, data, committer, pushErr, &out, log)
	})
	return out, err
}

// afterFailedPush finds out what a failed push of commit and its note left
// on the remote, and makes it whole where it can: both landed (the answer
// was lost): success; only the commit: push the note again; only the note:
// an orphan, whose note the next attempt or the job's end removes.
func (q *Queue) afterFailedPush(ctx context.Context, tx Tx, commit string, note []byte, sig Signature, pushErr error, out *outcome, log zerolog.Logger) error {
	wrapped := fmt.Errorf("push commit %s and its job note to branch %s: %w", short(commit), q.cfg.Branch, pushErr)
	if err := tx.Fetch(ctx); err != nil {
		out.uncertain = commit
		return wrapped
	}
	head, err := tx.Head()
	if err != nil {
		out.uncertain = commit
		return wrapped
	}
	onBranch, err := tx.IsAncestor(commit, head)
	if err != nil {
		onBranch = false
	}
	_, noteErr := tx.Note(q.cfg.NotesRef, commit)
	noted := noteErr == nil
	switch {
	case onBranch && noted:
		log.Warn().Err(pushErr).Str("commit", commit).Msg("the push reported an error, but the commit and its note are on the remote")
		out.commit = commit
		return nil
	case onBranch:
		// Someone moved the notes ref between our look and our update:
		// the commit is on the branch without its note. Put it back.
		err := q.pushNotes(ctx, tx, q.cfg.NotesRef, func() error { return tx.SetNote(q.cfg.NotesRef, commit, note, sig) })
		if err != nil {
			out.uncertain = commit
			return fmt.Errorf("commit %s is on branch %s, but its job note could not be pushed: %w", short(commit), q.cfg.Branch, err)
		}
		log.Warn().Err(pushErr).Str("commit", commit).Msg("the commit landed without its job note; the note was pushed again")
		out.commit = commit
		return nil
	case noted:
		out.orphan = commit
	}
	return wrapped
}

// pushNotes runs write, which changes notesRef in the mirror, and pushes
// notesRef. When the remote ref has moved on it fetches (which takes the
// remote's notes as the base), writes again and pushes again, up to
// Config.MaxRetries times: so others' notes are kept, never overwritten.
func (q *Queue) pushNotes(ctx context.Context, tx Tx, notesRef string, write func() error) error {
	for try := 0; ; try++ {
		if err := write(); err != nil {
			return err
		}
		err := tx.Push(ctx, notesRef)
		if err == nil || !errors.Is(err, ErrNonFastForward) || try >= q.cfg.MaxRetries {
			return err
		}
		if err := tx.Fetch(ctx); err != nil {
			return fmt.Errorf("git fetch: %w", err)
		}
	}
}

// dropNotes removes the notes of orphans (commits of earlier attempts) that
// are in the notes ref but whose commit is not on the branch at head.
func (q *Queue) dropNotes(tx Tx, orphans []string, head string, sig Signature) error {
	for _, c := range orphans {
		if on, err := tx.IsAncestor(c, head); err == nil && on {
			continue
		}
		err := tx.RemoveNote(q.cfg.NotesRef, c, sig)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("remove the job note of the abandoned commit %s: %w", short(c), err)
		}
	}
	return nil
}

// removeOrphans removes, at the end of a failed job, the notes its
// attempts left on commits that never reached the branch.
func (q *Queue) removeOrphans(ctx context.Context, orphans []string, log zerolog.Logger) {
	err := q.repo.Update(ctx, func(tx Tx) error {
		if err := tx.Fetch(ctx); err != nil {
			return fmt.Errorf("git fetch: %w", err)
		}
		return q.pushNotes(ctx, tx, q.cfg.NotesRef, func() error {
			head, err := tx.Head()
			if err != nil {
				return err
			}
			return q.dropNotes(tx, orphans, head, q.cfg.Committer)
		})
	})
	if err != nil {
		log.Warn().Err(err).Strs("commits", orphans).Msg("could not remove the job notes of commits that never reached the branch; Status reports them as failed")
	}
}

// readFiles reads the manifests under each git path at head. A path that
// is not there is left out (the Edit reports the workloads it cannot
// find); any other error fails the attempt.
func (q *Queue) readFiles(tx Tx, head string, log zerolog.Logger) ([]resource.File, error) {
	byPath := map[string]resource.File{}
	for _, p := range q.cfg.Paths {
		fs, err := tx.Files(head, []string{p})
		if errors.Is(err, ErrPathNotFound) {
			log.Warn().Str("path", p).Str("commit", short(head)).Msg("git path not found: the job sees no manifests there")
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read manifests under %q at %s: %w", p, short(head), err)
		}
		for _, f := range fs {
			byPath[f.Path] = f
		}
	}
	files := make([]resource.File, 0, len(byPath))
	for _, f := range byPath {
		files = append(files, f)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	return files, nil
}

// runEdit runs the job's Edit, turning a panic into the job's error.
func runEdit(edit Edit, files []resource.File) (changed map[string][]byte, results map[resource.ID]notes.WorkloadResult, err error) {
	defer func() {
		if r := recover(); r != nil {
			changed, results, err = nil, nil, fmt.Errorf("job edit failed: %v", r)
		}
	}()
	return edit(files)
}

// checkPaths makes sure an Edit only changes files under the git paths.
func (q *Queue) checkPaths(changed map[string][]byte) error {
	for p := range changed {
		clean := path.Clean(p)
		if p == "" || path.IsAbs(clean) || clean == "." || clean == ".." || strings.HasPrefix(clean, "../") {
			return fmt.Errorf("job edit changed %q, which is not a path in the repository", p)
		}
		if !underAny(clean, q.cfg.Paths) {
			return fmt.Errorf("job edit changed %s, which is outside the git paths %q", p, q.cfg.Paths)
		}
	}
	return nil
}

func underAny(p string, dirs []string) bool {
	for _, d := range dirs {
		d = strings.TrimPrefix(path.Clean("/"+strings.TrimSpace(d)), "/")
		if d == "" || p == d || strings.HasPrefix(p, d+"/") {
			return true
		}
	}
	return false
}

// noChange turns the results of an Edit whose changes were already in git
// into "skipped: no change" for the workloads it would have changed.
func noChange(results map[resource.ID]notes.WorkloadResult) map[resource.ID]notes.WorkloadResult {
	out := maps.Clone(results)
	for id, r := range out {
		if r.Status == notes.WorkloadSuccess {
			out[id] = notes.WorkloadResult{Status: notes.WorkloadSkipped, Error: notes.ReasonNoChange}
		}
	}
	return out
}

func short(commit string) string {
	if len(commit) > 7 {
		return commit[:7]
	}
	return commit
}
