// Package sync is fluxd's first loop: it keeps a cluster in step with a git
// branch. It fetches, reads the manifests at the branch head, applies them,
// and only after an apply writes the sync record note and moves the
// per-cluster sync tag, then pushes both.
//
// The loop owns its state in one goroutine; other goroutines talk to it
// through Trigger and Status. Git and the cluster are reached through the
// small Repo and Cluster interfaces, so this package depends on neither
// libgit2 nor client-go.
package sync

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fluxd/fluxd/kube/resource"
	"github.com/fluxd/fluxd/notes"
)

// Repo is what the loop needs of the git mirror.
type Repo interface {
	// Fetch brings the branch, the sync tags and the notes up to date.
	Fetch(ctx context.Context) error
	// Head is the commit at the tip of the branch, as last fetched.
	Head() (string, error)
	// Files returns the manifests under path at commit, read from the tree.
	Files(commit string, paths []string) ([]resource.File, error)
	// Tag returns the commit a tag points at, or an error matching
	// ErrNotFound when there is no such tag.
	Tag(name string) (string, error)
	// Note reads a note, or returns an error matching ErrNotFound.
	Note(ref, commit string) ([]byte, error)
	// Record writes a sync record to the remote: the note first, then (if
	// w.Tag is set) the annotated tag moved to the same commit, then one
	// push of both. No fetch may come between the writes and the push. A
	// rejected update matches ErrNonFastForward.
	Record(ctx context.Context, w Write) error
}

// Write is one sync record for Repo.Record.
type Write struct {
	NotesRef   string
	Commit     string
	Note       []byte
	Tag        string // empty: leave the tag where it is
	TagMessage string
}

// Cluster is what the loop needs of Kubernetes.
type Cluster interface {
	// Apply makes the cluster match files. Force re-applies objects that
	// look unchanged, to revert drift. blockPrune, when not empty, is why
	// nothing may be pruned this time. A returned error means the sync as a
	// whole could not run (e.g. the apiserver is unreachable); failures of
	// single objects are in the change set.
	Apply(ctx context.Context, files []resource.File, force bool, blockPrune string) (resource.ChangeSet, error)
}

// Errors the Repo implementation maps its own errors to, so the loop can
// classify them with errors.Is.
var (
	ErrNotFound       = errors.New("not found")
	ErrNonFastForward = errors.New("non-fast-forward")
	ErrPathNotFound   = errors.New("path not found")
)

// Config is the loop's fixed configuration.
type Config struct {
	Cluster  string   // the cluster name, used in the tag and notes ref names
	Paths    []string // the git paths holding manifests ("" is the root)
	ReadOnly bool     // apply, but never write to git
	// PollInterval is how often to fetch.
	PollInterval time.Duration
	// SyncInterval is how often to re-apply everything to revert drift.
	SyncInterval time.Duration
	// RetryInterval is the first wait after a failed fetch, apply or push;
	// it doubles up to PollInterval.
	RetryInterval time.Duration
}

func (c Config) validate() error {
	if err := notes.ValidateClusterName(c.Cluster); err != nil {
		return err
	}
	if c.PollInterval <= 0 || c.SyncInterval <= 0 {
		return fmt.Errorf("poll interval (%s) and sync interval (%s) must be positive", c.PollInterval, c.SyncInterval)
	}
	return nil
}
