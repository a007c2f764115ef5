package gitstate

import (
	"fmt"
	"path"
	"sort"
	"strings"

	git "github.com/libgit2/git2go/v34"

	"github.com/fluxd/fluxd/kube/resource"
)

// Files returns the manifest files (*.yaml, *.yml, *.json) under each of
// paths in commit's tree, read straight from the object database, sorted by
// path. A path is a directory, read recursively, or a single file, returned
// whatever its extension; "" and "." are the repository root, and no paths
// means the root. A path that is not in the tree is an ErrPathNotFound.
func (r *Repo) Files(commit string, paths []string) ([]resource.File, error) {
	return locked(r, func(t *Tx) ([]resource.File, error) { return t.Files(commit, paths) })
}

// Files is Repo.Files.
func (t *Tx) Files(commit string, paths []string) ([]resource.File, error) {
	c, err := t.lookupCommit(commit)
	if err != nil {
		return nil, err
	}
	defer c.Free()
	tree, err := c.Tree()
	if err != nil {
		return nil, err
	}
	defer tree.Free()
	found := map[string]*git.Oid{}
	for _, p := range cleanPaths(paths) {
		if err := t.collect(tree, p, found); err != nil {
			return nil, fmt.Errorf("commit %.7s: %w", c.Id().String(), err)
		}
	}
	return t.readBlobs(found)
}

// cleanPaths normalises paths relative to the repository root; "" is the
// root. No paths means the root.
func cleanPaths(paths []string) []string {
	if len(paths) == 0 {
		return []string{""}
	}
	out := make([]string, len(paths))
	for i, p := range paths {
		p = path.Clean("/" + strings.TrimSpace(p))
		out[i] = strings.TrimPrefix(p, "/")
	}
	return out
}

// collect adds the blobs at or under p in tree to found.
func (t *Tx) collect(tree *git.Tree, p string, found map[string]*git.Oid) error {
	if p == "" {
		return walkManifests(tree, "", found)
	}
	entry, err := tree.EntryByPath(p)
	if isCode(err, git.ErrorCodeNotFound) {
		return fmt.Errorf("%w: %q", ErrPathNotFound, p)
	}
	if err != nil {
		return err
	}
	switch entry.Type {
	case git.ObjectBlob:
		if entry.Filemode != git.FilemodeLink {
			found[p] = entry.Id
		}
		return nil
	case git.ObjectTree:
		sub, err := t.git.LookupTree(entry.Id)
		if err != nil {
			return err
		}
		defer sub.Free()
		return walkManifests(sub, p+"/", found)
	}
	return fmt.Errorf("%q is neither a file nor a directory", p)
}

// walkManifests adds the manifest blobs under tree, whose path is prefix.
// Symlinks and submodules are skipped.
func walkManifests(tree *git.Tree, prefix string, found map[string]*git.Oid) error {
	return tree.Walk(func(dir string, e *git.TreeEntry) error {
		if e.Type == git.ObjectBlob && e.Filemode != git.FilemodeLink && isManifest(e.Name) {
			found[prefix+dir+e.Name] = e.Id
		}
		return nil
	})
}

func isManifest(name string) bool {
	switch strings.ToLower(path.Ext(name)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// readBlobs reads the blobs, sorted by path.
func (t *Tx) readBlobs(found map[string]*git.Oid) ([]resource.File, error) {
	files := make([]resource.File, 0, len(found))
	for p, id := range found {
		data, err := t.readBlob(id)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", p, err)
		}
		files = append(files, resource.File{Path: p, Data: data})
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	return files, nil
}

func (t *Tx) readBlob(id *git.Oid) ([]byte, error) {
	blob, err := t.git.LookupBlob(id)
	if err != nil {
		return nil, err
	}
	defer blob.Free()
	return blob.Contents(), nil
}
