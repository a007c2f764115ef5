package adapt

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fluxd/fluxd/gitstate"
	"github.com/fluxd/fluxd/kube/resource"
	"github.com/fluxd/fluxd/sync"
)

// SyncRepo adapts the libgit2 mirror to the sync loop's Repo.
type SyncRepo struct {
	Repo     *gitstate.Repo
	Identity gitstate.Signature // committer and tagger; When is set per write
}

var _ sync.Repo = (*SyncRepo)(nil)

func (r *SyncRepo) Fetch(ctx context.Context) error { return r.Repo.Fetch(ctx) }
func (r *SyncRepo) Head() (string, error)           { return r.Repo.Head() }

func (r *SyncRepo) Files(commit string, paths []string) ([]resource.File, error) {
	fs, err := r.Repo.Files(commit, paths)
	return fs, syncErr(err)
}

func (r *SyncRepo) Tag(name string) (string, error) {
	c, err := r.Repo.Tag(name)
	return c, syncErr(err)
}

func (r *SyncRepo) Note(ref, commit string) ([]byte, error) {
	b, err := r.Repo.Note(ref, commit)
	return b, syncErr(err)
}

func (r *SyncRepo) Record(ctx context.Context, w sync.Write) error {
	sig := r.Identity
	sig.When = time.Now()
	err := r.Repo.Update(func(tx *gitstate.Tx) error {
		if err := tx.SetNote(w.NotesRef, w.Commit, w.Note, sig); err != nil {
			return err
		}
		refspecs := []string{w.NotesRef}
		if w.Tag != "" {
			if err := tx.SetTag(w.Tag, w.Commit, w.TagMessage, sig); err != nil {
				return err
			}
			refspecs = append(refspecs, "+refs/tags/"+w.Tag)
		}
		return tx.Push(ctx, refspecs...)
	})
	return syncErr(err)
}

// syncErr adds the sync package's sentinel to a gitstate error, keeping the
// original in the chain.
func syncErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, gitstate.ErrNotFound):
		return fmt.Errorf("%w: %w", sync.ErrNotFound, err)
	case errors.Is(err, gitstate.ErrPathNotFound):
		return fmt.Errorf("%w: %w", sync.ErrPathNotFound, err)
	case errors.Is(err, gitstate.ErrNonFastForward):
		return fmt.Errorf("%w: %w", sync.ErrNonFastForward, err)
	}
	return err
}
