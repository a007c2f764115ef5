package gitstate

import (
	"fmt"
	"sort"
	"strings"

	git "github.com/libgit2/git2go/v34"
)

// CommitsBetween returns the commits reachable from to but not from from
// (from "" means all of to's history), newest first. With paths, only the
// commits that change something under them, as `git log from..to -- paths`
// lists them: a merge counts only if it differs from every parent.
func (r *Repo) CommitsBetween(from, to string, paths []string) ([]string, error) {
	return locked(r, func(t *Tx) ([]string, error) { return t.CommitsBetween(from, to, paths) })
}

// ChangedPaths returns the files that differ between the trees of from and
// to (from "" means the empty tree), limited to paths when given, sorted.
// A rename lists both names.
func (r *Repo) ChangedPaths(from, to string, paths []string) ([]string, error) {
	return locked(r, func(t *Tx) ([]string, error) { return t.ChangedPaths(from, to, paths) })
}

// CommitsBetween is Repo.CommitsBetween.
func (t *Tx) CommitsBetween(from, to string, paths []string) ([]string, error) {
	walk, err := t.git.Walk()
	if err != nil {
		return nil, err
	}
	defer walk.Free()
	walk.Sorting(git.SortTopological | git.SortTime)
	if err := t.pushRange(walk, from, to); err != nil {
		return nil, err
	}
	var ids []string
	id := new(git.Oid)
	for {
		err := walk.Next(id)
		if isCode(err, git.ErrorCodeIterOver) {
			return ids, nil
		}
		if err != nil {
			return nil, err
		}
		touches, err := t.touches(id, paths)
		if err != nil {
			return nil, err
		}
		if touches {
			ids = append(ids, id.String())
		}
	}
}

func (t *Tx) pushRange(walk *git.RevWalk, from, to string) error {
	toID, err := t.resolveCommitID(to)
	if err != nil {
		return err
	}
	if err := walk.Push(toID); err != nil {
		return err
	}
	if from == "" {
		return nil
	}
	fromID, err := t.resolveCommitID(from)
	if err != nil {
		return err
	}
	return walk.Hide(fromID)
}

// touches reports whether the commit changes anything under paths: the
// entries at paths differ from those of each of its parents.
func (t *Tx) touches(id *git.Oid, paths []string) (bool, error) {
	if len(paths) == 0 {
		return true, nil
	}
	c, err := t.git.LookupCommit(id)
	if err != nil {
		return false, err
	}
	defer c.Free()
	mine, err := t.entryIDs(c, paths)
	if err != nil {
		return false, err
	}
	for i := uint(0); i < c.ParentCount(); i++ {
		same, err := t.sameEntries(c.ParentId(i), paths, mine)
		if same || err != nil {
			return false, err
		}
	}
	if c.ParentCount() > 0 {
		return true, nil
	}
	return strings.Join(mine, "") != "", nil // a root commit touches paths it creates
}

func (t *Tx) sameEntries(parent *git.Oid, paths, mine []string) (bool, error) {
	p, err := t.git.LookupCommit(parent)
	if err != nil {
		return false, err
	}
	defer p.Free()
	theirs, err := t.entryIDs(p, paths)
	if err != nil {
		return false, err
	}
	for i := range mine {
		if mine[i] != theirs[i] {
			return false, nil
		}
	}
	return true, nil
}

// entryIDs returns the object ID at each path in the commit's tree, "" for
// a path that is not there.
func (t *Tx) entryIDs(c *git.Commit, paths []string) ([]string, error) {
	tree, err := c.Tree()
	if err != nil {
		return nil, err
	}
	defer tree.Free()
	ids := make([]string, 0, len(paths))
	for _, p := range cleanPaths(paths) {
		if p == "" {
			ids = append(ids, tree.Id().String())
			continue
		}
		entry, err := tree.EntryByPath(p)
		switch {
		case isCode(err, git.ErrorCodeNotFound):
			ids = append(ids, "")
		case err != nil:
			return nil, err
		default:
			ids = append(ids, entry.Id.String())
		}
	}
	return ids, nil
}

// ChangedPaths is Repo.ChangedPaths.
func (t *Tx) ChangedPaths(from, to string, paths []string) ([]string, error) {
	oldTree, err := t.treeOf(from)
	if err != nil {
		return nil, err
	}
	if oldTree != nil {
		defer oldTree.Free()
	}
	newTree, err := t.treeOf(to)
	if err != nil {
		return nil, err
	}
	defer newTree.Free()
	opts, err := git.DefaultDiffOptions()
	if err != nil {
		return nil, err
	}
	opts.Flags |= git.DiffDisablePathspecMatch
	for _, p := range cleanPaths(paths) {
		if p != "" {
			opts.Pathspec = append(opts.Pathspec, p)
		}
	}
	diff, err := t.git.DiffTreeToTree(oldTree, newTree, &opts)
	if err != nil {
		return nil, fmt.Errorf("diff %s..%s: %w", from, to, err)
	}
	defer diff.Free()
	return diffPaths(diff)
}

// treeOf returns the tree of the commit rev names, nil for "".
func (t *Tx) treeOf(rev string) (*git.Tree, error) {
	if rev == "" {
		return nil, nil
	}
	c, err := t.lookupCommit(rev)
	if err != nil {
		return nil, err
	}
	defer c.Free()
	return c.Tree()
}

func diffPaths(diff *git.Diff) ([]string, error) {
	set := map[string]bool{}
	n, err := diff.NumDeltas()
	if err != nil {
		return nil, err
	}
	for i := 0; i < n; i++ {
		d, err := diff.Delta(i)
		if err != nil {
			return nil, err
		}
		set[d.OldFile.Path], set[d.NewFile.Path] = true, true
	}
	delete(set, "")
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	sort.Strings(out)
	return out, nil
}
