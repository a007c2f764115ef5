// Package adapt fits the libgit2 mirror (gitstate) to the small interfaces
// its consumers declare, such as the job queue's Repo, mapping gitstate's
// errors to their sentinels. The consumers stay free of libgit2.
package adapt

import (
	"context"
	"errors"
	"fmt"

	"github.com/fluxd/fluxd/gitstate"
	"github.com/fluxd/fluxd/kube/resource"
	"github.com/fluxd/fluxd/sync/jobs"
)

// JobsRepo adapts the libgit2 mirror to the job queue's Repo.
type JobsRepo struct {
	Repo *gitstate.Repo
}

var (
	_ jobs.Repo = (*JobsRepo)(nil)
	_ jobs.Tx   = jobsTx{}
)

// Update runs fn under the mirror's lock, so that no fetch (which
// overwrites the mirror's notes) comes between a job's writes and its push.
func (r *JobsRepo) Update(ctx context.Context, fn func(jobs.Tx) error) error {
	return r.Repo.Update(func(tx *gitstate.Tx) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		return fn(jobsTx{tx: tx})
	})
}

// jobsTx is the locked mirror, with errors mapped to the queue's sentinels.
type jobsTx struct {
	tx *gitstate.Tx
}

func (t jobsTx) Fetch(ctx context.Context) error { return jobsErr(t.tx.Fetch(ctx)) }

func (t jobsTx) Head() (string, error) {
	h, err := t.tx.Head()
	return h, jobsErr(err)
}

func (t jobsTx) Files(commit string, paths []string) ([]resource.File, error) {
	fs, err := t.tx.Files(commit, paths)
	return fs, jobsErr(err)
}

func (t jobsTx) CommitFiles(parent string, files map[string][]byte, message string, author, committer jobs.Signature) (string, error) {
	id, err := t.tx.CommitFiles(parent, files, message, gitstate.Signature(author), gitstate.Signature(committer))
	return id, jobsErr(err)
}

func (t jobsTx) SetNote(notesRef, commit string, data []byte, sig jobs.Signature) error {
	return jobsErr(t.tx.SetNote(notesRef, commit, data, gitstate.Signature(sig)))
}

func (t jobsTx) RemoveNote(notesRef, commit string, sig jobs.Signature) error {
	return jobsErr(t.tx.RemoveNote(notesRef, commit, gitstate.Signature(sig)))
}

func (t jobsTx) Note(notesRef, commit string) ([]byte, error) {
	b, err := t.tx.Note(notesRef, commit)
	return b, jobsErr(err)
}

func (t jobsTx) Notes(notesRef string) (map[string][]byte, error) {
	ns, err := t.tx.Notes(notesRef)
	return ns, jobsErr(err)
}

func (t jobsTx) Push(ctx context.Context, refspecs ...string) error {
	return jobsErr(t.tx.Push(ctx, refspecs...))
}

func (t jobsTx) IsAncestor(ancestor, commit string) (bool, error) {
	ok, err := t.tx.IsAncestor(ancestor, commit)
	return ok, jobsErr(err)
}

// jobsErr adds the job queue's sentinel to a gitstate error, keeping the
// original in the chain.
func jobsErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, gitstate.ErrNonFastForward):
		return fmt.Errorf("%w: %w", jobs.ErrNonFastForward, err)
	case errors.Is(err, gitstate.ErrNoChanges):
		return fmt.Errorf("%w: %w", jobs.ErrNoChanges, err)
	case errors.Is(err, gitstate.ErrNotFound):
		return fmt.Errorf("%w: %w", jobs.ErrNotFound, err)
	case errors.Is(err, gitstate.ErrPathNotFound):
		return fmt.Errorf("%w: %w", jobs.ErrPathNotFound, err)
	}
	return err
}
