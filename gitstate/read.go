package gitstate

import (
	"fmt"

	git "github.com/libgit2/git2go/v34"
)

// CommitInfo describes one commit.
type CommitInfo struct {
	ID        string
	Parents   []string
	Message   string
	Author    Signature
	Committer Signature
}

// Head returns the commit the remote branch pointed at, as of the last
// Fetch (or Push to it); ErrNoBranch if the branch does not exist.
func (r *Repo) Head() (string, error) { return locked(r, (*Tx).Head) }

// ResolveRevision returns the full commit ID that rev names: a full or
// abbreviated commit ID, a ref name such as refs/tags/flux-sync/c, or any
// other revision git understands. Tags are peeled to their commit.
func (r *Repo) ResolveRevision(rev string) (string, error) {
	return locked(r, func(t *Tx) (string, error) { return t.ResolveRevision(rev) })
}

// Commit describes the commit rev names.
func (r *Repo) Commit(rev string) (CommitInfo, error) {
	return locked(r, func(t *Tx) (CommitInfo, error) { return t.Commit(rev) })
}

// IsAncestor reports whether ancestor is commit or one of its ancestors.
func (r *Repo) IsAncestor(ancestor, commit string) (bool, error) {
	return locked(r, func(t *Tx) (bool, error) { return t.IsAncestor(ancestor, commit) })
}

// Head is Repo.Head.
func (t *Tx) Head() (string, error) {
	ref, err := t.git.References.Lookup(t.trackingRef())
	if isCode(err, git.ErrorCodeNotFound) {
		return "", fmt.Errorf("%w: %s has no branch %q (as of the last fetch)", ErrNoBranch, t.url.Redacted(), t.branch)
	}
	if err != nil {
		return "", err
	}
	defer ref.Free()
	return ref.Target().String(), nil
}

// ResolveRevision is Repo.ResolveRevision.
func (t *Tx) ResolveRevision(rev string) (string, error) {
	c, err := t.lookupCommit(rev)
	if err != nil {
		return "", err
	}
	defer c.Free()
	return c.Id().String(), nil
}

// Commit is Repo.Commit.
func (t *Tx) Commit(rev string) (CommitInfo, error) {
	c, err := t.lookupCommit(rev)
	if err != nil {
		return CommitInfo{}, err
	}
	defer c.Free()
	info := CommitInfo{
		ID:        c.Id().String(),
		Message:   c.Message(),
		Author:    fromGit(c.Author()),
		Committer: fromGit(c.Committer()),
	}
	for i := uint(0); i < c.ParentCount(); i++ {
		info.Parents = append(info.Parents, c.ParentId(i).String())
	}
	return info, nil
}

// IsAncestor is Repo.IsAncestor.
func (t *Tx) IsAncestor(ancestor, commit string) (bool, error) {
	a, err := t.resolveCommitID(ancestor)
	if err != nil {
		return false, err
	}
	c, err := t.resolveCommitID(commit)
	if err != nil {
		return false, err
	}
	if a.Equal(c) {
		return true, nil
	}
	return t.git.DescendantOf(c, a)
}

// resolve returns the ID of the object rev names, without peeling.
func (t *Tx) resolve(rev string) (*git.Oid, error) {
	obj, err := t.git.RevparseSingle(rev)
	if err != nil {
		return nil, revError(rev, err)
	}
	defer obj.Free()
	return obj.Id(), nil
}

// lookupCommit returns the commit rev names; the caller frees it.
func (t *Tx) lookupCommit(rev string) (*git.Commit, error) {
	obj, err := t.git.RevparseSingle(rev)
	if err != nil {
		return nil, revError(rev, err)
	}
	defer obj.Free()
	peeled, err := obj.Peel(git.ObjectCommit)
	if err != nil {
		return nil, fmt.Errorf("%q does not name a commit: %w", rev, err)
	}
	defer peeled.Free()
	return peeled.AsCommit()
}

func (t *Tx) resolveCommitID(rev string) (*git.Oid, error) {
	c, err := t.lookupCommit(rev)
	if err != nil {
		return nil, err
	}
	defer c.Free()
	return c.Id(), nil
}

func revError(rev string, err error) error {
	if isCode(err, git.ErrorCodeNotFound) {
		return fmt.Errorf("revision %q: %w", rev, ErrNotFound)
	}
	return fmt.Errorf("revision %q: %w", rev, err)
}
