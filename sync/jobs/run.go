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
	// notePushed is the commit whose job note reached the remote, if the
	// attempt got that far.
	notePushed string
}

// run runs one job to the end and records its status.
func (q *Queue) run(ctx context.Context, e *entry) {
	job := e.job
	log := q.o.log.With().Str("job", job.ID).Str("kind", job.Kind).Logger()
	log.Info().Msg("job started")
	s := Status{ID: job.ID, Kind: job.Kind, Spec: job.Spec, Cause: job.Cause}
	out, noted, err := q.execute(ctx, job, log)
	switch {
	case err != nil:
		s.State, s.Err = Failed, err.Error()
		// A commit whose note was pushed may be on the branch after all
		// (a push whose answer was lost): Status looks again.
		for _, c := range noted {
			q.index.add(job.ID, c, q.o.now())
		}
		s.recheck = len(noted) > 0
		log.Error().Err(err).Msg("job failed")
	case out.commit == "":
		s.State, s.Results = Succeeded, out.results
		log.Info().Msg("job done: nothing to change")
	default:
		s.State, s.Commit, s.Results = Succeeded, out.commit, out.results
		log.Info().Str("commit", out.commit).Str("branch", q.cfg.Branch).Msg("job done: commit and job note pushed")
	}
	q.finish(e, s)
}

// execute runs attempts until one succeeds, one fails for a reason other
// than the remote moving on, or the retries are used up. It also returns
// the commits whose notes it pushed.
func (q *Queue) execute(ctx context.Context, job Job, log zerolog.Logger) (outcome, []string, error) {
	var noted []string
	for attempt := 1; ; attempt++ {
		out, err := q.attempt(ctx, job, log)
		if out.notePushed != "" {
			noted = append(noted, out.notePushed)
		}
		if err == nil {
			return out, noted, nil
		}
		if ctx.Err() != nil {
			return outcome{}, noted, fmt.Errorf("fluxd stopped while the job ran: %w", err)
		}
		if !errors.Is(err, ErrNonFastForward) {
			return outcome{}, noted, err
		}
		if attempt > q.cfg.MaxRetries {
			return outcome{}, noted, fmt.Errorf("gave up after %d attempts, as the remote moved on during each: %w", attempt, err)
		}
		log.Info().Err(err).Int("attempt", attempt).Msg("the remote moved on since the fetch: redoing the job on its new head")
	}
}

// attempt does the job once, under one lock of the mirror: fetch, edit the
// head's manifests, commit, note, push the note, push the commit. See the
// package documentation for the order of the pushes.
func (q *Queue) attempt(ctx context.Context, job Job, log zerolog.Logger) (out outcome, err error) {
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
		if err := tx.SetNote(q.cfg.NotesRef, commit, data, committer); err != nil {
			return fmt.Errorf("write job note: %w", err)
		}
		// The note first, then the commit: a note whose commit never
		// reaches the branch is recognised later; a commit without its
		// note would lose the job record.
		if err := tx.Push(ctx, q.cfg.NotesRef); err != nil {
			return fmt.Errorf("push job note to %s: %w", q.cfg.NotesRef, err)
		}
		out.notePushed = commit
		if err := tx.Push(ctx, commit+":refs/heads/"+q.cfg.Branch); err != nil {
			if !errors.Is(err, ErrNonFastForward) && landed(ctx, tx, commit) {
				log.Warn().Err(err).Str("commit", commit).Msg("the push of the commit reported an error, but the commit is on the branch")
				out.commit = commit
				return nil
			}
			return fmt.Errorf("push commit %s to branch %s: %w", short(commit), q.cfg.Branch, err)
		}
		out.commit = commit
		return nil
	})
	return out, err
}

// landed reports whether commit is on the branch after all, for a push
// whose answer was lost: it fetches and looks.
func landed(ctx context.Context, tx Tx, commit string) bool {
	if tx.Fetch(ctx) != nil {
		return false
	}
	head, err := tx.Head()
	if err != nil {
		return false
	}
	on, err := tx.IsAncestor(commit, head)
	return err == nil && on
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
