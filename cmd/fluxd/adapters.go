package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fluxd/fluxd/gitstate"
	"github.com/fluxd/fluxd/kube"
	"github.com/fluxd/fluxd/kube/resource"
	"github.com/fluxd/fluxd/sync"
)

// syncRepo adapts the libgit2 mirror to the sync loop's Repo.
type syncRepo struct {
	repo     *gitstate.Repo
	identity gitstate.Signature // committer and tagger; When is set per write
}

var _ sync.Repo = (*syncRepo)(nil)

func (r *syncRepo) Fetch(ctx context.Context) error { return r.repo.Fetch(ctx) }
func (r *syncRepo) Head() (string, error)           { return r.repo.Head() }

func (r *syncRepo) Files(commit string, paths []string) ([]resource.File, error) {
	fs, err := r.repo.Files(commit, paths)
	return fs, syncErr(err)
}

func (r *syncRepo) Tag(name string) (string, error) {
	c, err := r.repo.Tag(name)
	return c, syncErr(err)
}

func (r *syncRepo) Note(ref, commit string) ([]byte, error) {
	b, err := r.repo.Note(ref, commit)
	return b, syncErr(err)
}

func (r *syncRepo) Record(ctx context.Context, w sync.Write) error {
	sig := r.identity
	sig.When = time.Now()
	err := r.repo.Update(func(tx *gitstate.Tx) error {
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

// syncCluster adapts the kube applier to the sync loop's Cluster.
type syncCluster struct {
	cluster *kube.Cluster
	opts    kube.SyncOptions
}

var _ sync.Cluster = (*syncCluster)(nil)

func (c *syncCluster) Apply(ctx context.Context, files []resource.File, force bool, blockPrune string) (resource.ChangeSet, error) {
	o := c.opts
	o.Force = force
	o.PruneBlocked = blockPrune
	return c.cluster.Sync(ctx, files, o)
}
