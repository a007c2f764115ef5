// Package jobs is fluxd's job queue: releases, policy changes and automated
// releases that edit the manifests in git. Jobs are queued in memory and run
// one at a time by one worker goroutine (Run), apart from the sync loop, so a
// slow job never holds up a sync.
//
// # What a job does
//
// Submit first records the job in the job journal (notes.JobEvent, a notes
// ref of its own) and pushes it, and only then answers with the job's ID:
// an accepted job is never lost. Each attempt then runs under one lock of
// the git mirror (Repo.Update), because a Fetch overwrites the mirror's
// notes with the remote's:
//
//  1. fetch; read the branch head and the manifests under the git paths;
//  2. run the job's Edit on them (a pure function: it is run again on the
//     new head if the attempt is retried);
//  3. if the Edit changed nothing, the job succeeds with no commit, and
//     its workload results say "no change";
//  4. commit the changed files on the head (author from the job,
//     committer from Config), and write the job record (notes.JobRecord)
//     as the commit's note in the notes ref (refs/notes/flux);
//  5. push the notes ref and the commit to the branch in one push.
//
// A push refused as non-fast-forward (someone pushed to the branch, or added
// a note, since the fetch) starts a new attempt: fetch again, which takes the
// remote's notes ref as the base, redo the Edit on the new head, commit and
// write our note on top, and push again; so others' commits and notes are
// kept (a union of notes, by commit), never overwritten. After
// Config.MaxRetries such retries the job fails. Other errors fail the job at
// once. A job that ends without a commit (it failed, or changed nothing)
// records its end in the journal.
//
// # One push, and what a failure or a crash leaves behind
//
// libgit2 cannot ask for git's atomic push, but one push of both refs comes
// close: libgit2 sends nothing when either remote ref is not an ancestor of
// ours, and the remote applies both updates once it has the whole pack, so
// a fluxd killed mid-push leaves both or neither. Only another writer
// updating one of the two refs in the instant between the remote's ref
// listing and its update makes one land without the other; after any
// failed push the attempt fetches and looks:
//
//   - both landed (the answer was lost): the job succeeded;
//   - only the commit: the note is written again on the fetched notes and
//     pushed, so no commit is left without its note;
//   - only the note: the commit is abandoned, and the next attempt (or the
//     end of the job) removes the note, so no note is left on a commit that
//     is not on the branch;
//   - if the fetch fails too, the job fails, and Status looks at the notes
//     again later: a commit that did land makes it succeeded.
//
// Where a crash (a kill of fluxd, or of its machine) can stop a job:
//
//   - After Submit returned but before the job's push: nothing but the
//     journal's "queued" event is in git. The next fluxd finds the job in
//     the journal at start-up (Recover) and runs it again, under the same
//     ID (WithResume rebuilds its Edit from its spec), so `fluxctl
//     check-release` sees it finish. A job resumed maxResumes times without
//     ending, or one the new fluxd cannot rebuild, is failed in the journal
//     with the reason instead.
//   - During or after the push: the commit and its note landed together (or
//     neither did, and the job runs again as above). A job whose commit is
//     on the branch is never run again: its note says it succeeded.
//
// # Status
//
// Queued and running jobs are known in memory. Finished jobs are kept in
// memory (the last WithHistory of them, 100 by default), and otherwise read
// back from git: a job that made a commit from its job note (the notes ref
// is scanned for the job ID; the index is built lazily and kept up to date
// by the worker), any other from its events in the journal. So a job's
// status survives a restart, and a job fluxd accepted is never "unknown".
package jobs
