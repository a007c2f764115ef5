package gitstate

import (
	"fmt"
	"path"
	"sort"
	"strings"

	git "github.com/libgit2/git2go/v34"
)

// CommitFiles makes a commit on top of parent ("" for a first commit)
// whose tree is parent's with files written (path -> content) or deleted
// (path -> nil; a directory is deleted whole), and returns its ID. It needs
// no work tree and moves no ref: push "<id>:refs/heads/<branch>" to publish
// it. A commit that would change nothing is ErrNoChanges; deleting a path
// that is not there is ErrPathNotFound. A modified file keeps its mode.
func (r *Repo) CommitFiles(parent string, files map[string][]byte, message string, author, committer Signature) (string, error) {
	return locked(r, func(t *Tx) (string, error) {
		return t.CommitFiles(parent, files, message, author, committer)
	})
}

// CommitFiles is Repo.CommitFiles.
func (t *Tx) CommitFiles(parent string, files map[string][]byte, message string, author, committer Signature) (string, error) {
	index, err := git.NewIndex()
	if err != nil {
		return "", err
	}
	defer index.Free()
	var parents []*git.Oid
	var parentTree *git.Oid
	if parent != "" {
		c, err := t.lookupCommit(parent)
		if err != nil {
			return "", err
		}
		defer c.Free()
		if parentTree, err = t.readTreeInto(index, c); err != nil {
			return "", err
		}
		parents = append(parents, c.Id())
	}
	if err := t.applyFiles(index, files); err != nil {
		return "", err
	}
	tree, err := index.WriteTreeTo(t.git)
	if err != nil {
		return "", fmt.Errorf("write tree: %w", err)
	}
	if parentTree != nil && tree.Equal(parentTree) {
		return "", ErrNoChanges
	}
	id, err := t.git.CreateCommitFromIds("", author.toGit(), committer.toGit(), message, tree, parents...)
	if err != nil {
		return "", fmt.Errorf("create commit: %w", err)
	}
	return id.String(), nil
}

func (t *Tx) readTreeInto(index *git.Index, c *git.Commit) (*git.Oid, error) {
	tree, err := c.Tree()
	if err != nil {
		return nil, err
	}
	defer tree.Free()
	return tree.Id(), index.ReadTree(tree)
}

// applyFiles writes and deletes files in the in-memory index, in path
// order so that errors are deterministic.
func (t *Tx) applyFiles(index *git.Index, files map[string][]byte) error {
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		clean, err := cleanFilePath(p)
		if err != nil {
			return err
		}
		if files[p] == nil {
			err = removePath(index, clean)
		} else {
			err = t.writeFile(index, clean, files[p])
		}
		if err != nil {
			return fmt.Errorf("%s: %w", clean, err)
		}
	}
	return nil
}

// cleanFilePath checks that p is a relative path inside the repository.
func cleanFilePath(p string) (string, error) {
	clean := path.Clean(p)
	if p == "" || clean == "." || path.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") {
		return "", fmt.Errorf("file path %q is not a path inside the repository", p)
	}
	return clean, nil
}

func (t *Tx) writeFile(index *git.Index, p string, data []byte) error {
	id, err := t.git.CreateBlobFromBuffer(data)
	if err != nil {
		return err
	}
	mode := git.FilemodeBlob
	if old, err := index.EntryByPath(p, 0); err == nil && old.Mode == git.FilemodeBlobExecutable {
		mode = old.Mode
	}
	return index.Add(&git.IndexEntry{Path: p, Id: id, Mode: mode, Size: uint32(len(data))})
}

func removePath(index *git.Index, p string) error {
	if _, err := index.EntryByPath(p, 0); err == nil {
		return index.RemoveByPath(p)
	}
	if _, err := index.FindPrefix(p + "/"); err == nil {
		return index.RemoveDirectory(p, 0)
	}
	return ErrPathNotFound
}
