package gitstate

import (
	"bytes"
	"fmt"
	"strings"

	git "github.com/libgit2/git2go/v34"
)

// Tag returns the commit the tag (e.g. "flux-sync/prod", or its full ref
// name) points at, annotated or lightweight; ErrNotFound if there is none.
func (r *Repo) Tag(name string) (string, error) {
	return locked(r, func(t *Tx) (string, error) { return t.Tag(name) })
}

// TagMessage returns the message of an annotated tag, "" for a lightweight
// one; ErrNotFound if there is no such tag.
func (r *Repo) TagMessage(name string) (string, error) {
	return locked(r, func(t *Tx) (string, error) { return t.TagMessage(name) })
}

// SetTag points the annotated tag name at commit in the mirror, replacing
// any tag of that name. Push "+refs/tags/<name>" to publish it.
func (r *Repo) SetTag(name, commit, message string, tagger Signature) error {
	return lockedErr(r, func(t *Tx) error { return t.SetTag(name, commit, message, tagger) })
}

// Note returns the note on commit in notesRef (e.g. "refs/notes/flux");
// ErrNotFound if there is none.
func (r *Repo) Note(notesRef, commit string) ([]byte, error) {
	return locked(r, func(t *Tx) ([]byte, error) { return t.Note(notesRef, commit) })
}

// SetNote writes data as the note on commit in notesRef, replacing any note
// there. Push notesRef to publish it.
func (r *Repo) SetNote(notesRef, commit string, data []byte, sig Signature) error {
	return lockedErr(r, func(t *Tx) error { return t.SetNote(notesRef, commit, data, sig) })
}

// RemoveNote removes the note on commit (a full ID; the commit need not be
// in the mirror) from notesRef; ErrNotFound if there is none. Push
// notesRef to publish it.
func (r *Repo) RemoveNote(notesRef, commit string, sig Signature) error {
	return lockedErr(r, func(t *Tx) error { return t.RemoveNote(notesRef, commit, sig) })
}

// Notes returns every note in notesRef by the full ID of the commit it is
// on; an empty map if the notes ref does not exist.
func (r *Repo) Notes(notesRef string) (map[string][]byte, error) {
	return locked(r, func(t *Tx) (map[string][]byte, error) { return t.Notes(notesRef) })
}

func tagRef(name string) string {
	if strings.HasPrefix(name, "refs/tags/") {
		return name
	}
	return "refs/tags/" + name
}

// Tag is Repo.Tag.
func (t *Tx) Tag(name string) (string, error) {
	ref, err := t.lookupTagRef(name)
	if err != nil {
		return "", err
	}
	defer ref.Free()
	obj, err := ref.Peel(git.ObjectCommit)
	if err != nil {
		return "", fmt.Errorf("tag %s: %w", name, err)
	}
	defer obj.Free()
	return obj.Id().String(), nil
}

// TagMessage is Repo.TagMessage.
func (t *Tx) TagMessage(name string) (string, error) {
	ref, err := t.lookupTagRef(name)
	if err != nil {
		return "", err
	}
	defer ref.Free()
	obj, err := t.git.Lookup(ref.Target())
	if err != nil {
		return "", fmt.Errorf("tag %s: %w", name, err)
	}
	defer obj.Free()
	if obj.Type() != git.ObjectTag {
		return "", nil // lightweight: the ref names the commit itself
	}
	tag, err := obj.AsTag()
	if err != nil {
		return "", fmt.Errorf("tag %s: %w", name, err)
	}
	defer tag.Free()
	return tag.Message(), nil
}

func (t *Tx) lookupTagRef(name string) (*git.Reference, error) {
	ref, err := t.git.References.Lookup(tagRef(name))
	if isCode(err, git.ErrorCodeNotFound) {
		return nil, fmt.Errorf("tag %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("tag %s: %w", name, err)
	}
	return ref, nil
}

// SetTag is Repo.SetTag. libgit2 1.5 cannot replace a tag while creating
// it, so the old ref is deleted first; the Repo's lock keeps anyone from
// seeing the gap.
func (t *Tx) SetTag(name, commit, message string, tagger Signature) error {
	name = strings.TrimPrefix(name, "refs/tags/")
	c, err := t.lookupCommit(commit)
	if err != nil {
		return err
	}
	defer c.Free()
	if err := t.git.Tags.Remove(name); err != nil && !isCode(err, git.ErrorCodeNotFound) {
		return fmt.Errorf("tag %s: remove old: %w", name, err)
	}
	if _, err := t.git.Tags.Create(name, c, tagger.toGit(), message); err != nil {
		return fmt.Errorf("tag %s: %w", name, err)
	}
	return nil
}

// Note is Repo.Note.
func (t *Tx) Note(notesRef, commit string) ([]byte, error) {
	id, err := t.resolveCommitID(commit)
	if err != nil {
		return nil, err
	}
	note, err := t.git.Notes.Read(notesRef, id)
	if isCode(err, git.ErrorCodeNotFound) {
		return nil, fmt.Errorf("note in %s on %s: %w", notesRef, commit, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("note in %s on %s: %w", notesRef, commit, err)
	}
	defer note.Free()
	return []byte(note.Message()), nil
}

// SetNote is Repo.SetNote.
func (t *Tx) SetNote(notesRef, commit string, data []byte, sig Signature) error {
	if bytes.IndexByte(data, 0) >= 0 {
		return fmt.Errorf("note in %s on %s: notes may not contain NUL bytes", notesRef, commit)
	}
	id, err := t.resolveCommitID(commit)
	if err != nil {
		return err
	}
	s := sig.toGit()
	if _, err := t.git.Notes.Create(notesRef, s, s, id, string(data), true); err != nil {
		return fmt.Errorf("note in %s on %s: %w", notesRef, commit, err)
	}
	return nil
}

// RemoveNote is Repo.RemoveNote.
func (t *Tx) RemoveNote(notesRef, commit string, sig Signature) error {
	id, err := git.NewOid(commit)
	if err != nil {
		return fmt.Errorf("note in %s on %q: a full commit ID is needed: %w", notesRef, commit, err)
	}
	s := sig.toGit()
	err = t.git.Notes.Remove(notesRef, s, s, id)
	if isCode(err, git.ErrorCodeNotFound) {
		return fmt.Errorf("note in %s on %s: %w", notesRef, commit, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("remove note in %s on %s: %w", notesRef, commit, err)
	}
	return nil
}

// Notes is Repo.Notes.
func (t *Tx) Notes(notesRef string) (map[string][]byte, error) {
	notes := map[string][]byte{}
	it, err := t.git.NewNoteIterator(notesRef)
	if isCode(err, git.ErrorCodeNotFound) {
		return notes, nil
	}
	if err != nil {
		return nil, fmt.Errorf("notes %s: %w", notesRef, err)
	}
	defer it.Free()
	for {
		noteID, commitID, err := it.Next()
		if isCode(err, git.ErrorCodeIterOver) {
			return notes, nil
		}
		if err != nil {
			return nil, fmt.Errorf("notes %s: %w", notesRef, err)
		}
		data, err := t.readBlob(noteID)
		if err != nil {
			return nil, fmt.Errorf("notes %s on %s: %w", notesRef, commitID, err)
		}
		notes[commitID.String()] = data
	}
}
