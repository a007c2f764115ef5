// Package jobs is fluxd's job queue: releases, policy changes and automated
// releases that edit the manifests in git. Jobs are queued in memory and run
// one at a time by one worker goroutine (Run), apart from the sync loop, so a
// slow job never holds up a sync.
//
// # What a job does
//
// Each attempt runs under one lock of the git mirror (Repo.Update), because
// a Fetch overwrites the mirror's notes with the remote's:
//
//  1. fetch; read the branch head and the manifests under the git paths;
//  2. run the job's Edit on them (a pure function: it is run again on the
//     new head if the attempt is retried);
//  3. if the Edit changed nothing, the job succeeds with no commit, and
//     its workload results say "no change";
//  4. commit the changed files on the head (author from the job,
//     committer from Config), and write the job record (notes.JobRecord)
//     as the commit's note in the notes ref (refs/notes/flux);
//  5. push the notes ref, then the commit to the branch, in two pushes.
//
// A push refused as non-fast-forward (someone pushed to the branch, or added
// a note, since the fetch) starts a new attempt: fetch again, which takes the
// remote's notes ref as the base, redo the Edit on the new head, commit and
// write our note on top, and push again; so others' commits and notes are
// kept (a union of notes, by commit), never overwritten. After
// Config.MaxRetries such retries the job fails. Other errors fail the job at
// once.
//
// # Push order and what a crash leaves behind
//
// libgit2 has no atomic push, so the two refs are pushed one after the other
// and a crash (or a failed push) can come between any two steps. The notes
// ref goes first: a commit on the branch without its note would lose the job
// record for good, while a note on a commit that never reached the branch is
// only a stray note that Status can recognise. (The notes push does not carry
// the commit itself: a note names its commit but does not reference it, so a
// mirror that did not make the commit may not have it at all.)
//
// Where a crash, or a push failing for good, can stop a job, and what Status
// says afterwards:
//
//   - Before the notes push (while queued, fetching, editing, committing or
//     writing the note): nothing reached the remote. The commit and note
//     exist only in the mirror; the next Fetch replaces the mirror's notes
//     ref with the remote's and the commit is unreferenced. In the same
//     process Status says failed with the error; after a restart git holds no
//     trace of the job, so Status says ErrUnknownJob ("Job not found": the
//     job made no commit). This is the only case without a record, and it
//     changed nothing.
//   - After the notes push, before the branch push succeeds: the remote has
//     the note, on a commit that is not on the branch. Status, in this
//     process or any later one, finds the note, sees that its commit is not
//     on the branch and says failed: "the job's commit ... never reached
//     branch ...". fluxd never pushes that commit later: the user was told
//     the job failed, and applying it after the fact would surprise them.
//     Recover lists such jobs at start-up.
//   - The branch push reached the remote but its answer was lost (a network
//     error after the update): the attempt fetches and, if the commit is on
//     the branch, the job succeeded. If that cannot be told, the job fails
//     with the push error, and Status after the next fetch (or a restart)
//     reads it from the note: succeeded, as the commit is on the branch.
//   - After the branch push: the commit and its note are both on the
//     remote. If fluxd stops before the job is marked done in memory, Status
//     after a restart reads it from the note: succeeded, with its commit.
//
// A retry after a non-fast-forward branch push leaves the note of the
// abandoned attempt's commit in the notes ref (git notes cannot be removed
// through the mirror); Status picks the job's note whose commit is on the
// branch, so the stray note never makes the job look failed.
//
// # Status
//
// Queued and running jobs are known only in memory. Finished jobs are kept
// in memory (the last WithHistory of them, 100 by default), and otherwise
// read back from the notes: the notes ref is scanned for the job ID (the
// index is built lazily and kept up to date by the worker), so a job's
// status survives a restart. A job with no change has no note: it is known
// only while it is in memory.
package jobs
