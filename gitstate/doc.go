// Package gitstate is fluxd's only state store: a bare local mirror of one
// branch of the remote repository, with fluxd's tags and notes, read and
// written through libgit2. No other package imports libgit2; they use the
// Reader, Writer and Syncer interfaces (or their own smaller ones).
//
// Refs in the mirror:
//
//	refs/remotes/origin/<branch>    the remote branch as of the last Fetch
//	                                (or Push to it); Head reads it
//	refs/tags/flux-sync/<cluster>   annotated sync tag: the last commit
//	                                applied to <cluster>; its message says
//	                                when and what
//	refs/notes/flux                 job notes: one JSON note on each commit
//	                                fluxd made (--git-notes-ref)
//	refs/notes/flux-sync/<cluster>  sync records: one JSON note on each
//	                                commit a sync of <cluster> applied
//
// Fetch copies the remote's branch, flux-sync/* tags and notes refs into
// the mirror by force, so the remote always wins: a local change (SetTag,
// SetNote, CommitFiles) is only kept once Push has published it. Writers
// therefore change and push inside one Repo.Update, and on
// ErrNonFastForward fetch, redo the change on the new state and push again.
// No branch is ever checked out: files are read from, and commits built
// from, trees in the object database.
//
// libgit2 objects are freed as soon as each call is done with them, and a
// Repo serialises all use of its libgit2 repository behind one lock.
package gitstate
