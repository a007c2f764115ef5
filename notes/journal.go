package notes

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/fluxd/fluxd/kube/resource"
)

// The job journal is how a job outlives the fluxd that accepted it. Before
// fluxd answers a request with a job ID it pushes a "queued" event for the
// job; a job that ends without a commit (it failed, or changed nothing)
// pushes its end as an event too. A job that made a commit needs no end
// event: its job note (JobRecord) on that commit says it succeeded.
//
// Events are notes in the journal ref (refs/notes/flux-jobs/<cluster>), on
// the branch head of the moment, one JSON object per line, appended: so a
// restarted fluxd finds every job it had accepted, runs again the ones that
// never ended, and reports the others as they ended. `git notes
// --ref=flux-jobs/<cluster> show <commit>` shows them.

// JobEventVersion is the version of the JobEvent JSON this build writes.
const JobEventVersion = 1

// TypeJobEvent is the "type" of a JobEvent.
const TypeJobEvent = "job-event"

// What happened to a job, the "event" of a JobEvent.
const (
	// EventQueued: fluxd accepted the job. It holds what is needed to run
	// the job again after a restart.
	EventQueued = "queued"
	// EventResumed: a restarted fluxd queued the job again, as it had not
	// ended.
	EventResumed = "resumed"
	// EventFailed: the job ended without a commit, for the reason in Error.
	EventFailed = "failed"
	// EventUnchanged: the job succeeded with nothing to change.
	EventUnchanged = "unchanged"
)

// JobJournalRef is the notes ref of the job journal of the fluxd syncing
// cluster.
func JobJournalRef(cluster string) string { return "refs/notes/flux-jobs/" + cluster }

// JobEvent is one line of the job journal.
type JobEvent struct {
	Version int       `json:"version"`
	Type    string    `json:"type"`
	JobID   string    `json:"jobID"`
	Event   string    `json:"event"`
	Time    time.Time `json:"time"`

	// Set on EventQueued: the job as it was submitted.
	Kind    string          `json:"kind,omitempty"`
	Spec    json.RawMessage `json:"spec,omitempty"`
	Cause   *Cause          `json:"cause,omitempty"`
	Message string          `json:"message,omitempty"` // the commit message
	Author  *Author         `json:"author,omitempty"`  // the commit's author, if not the committer

	// Set on EventFailed.
	Error string `json:"error,omitempty"`
	// Set on EventUnchanged and EventFailed, when the job got that far.
	Results map[resource.ID]WorkloadResult `json:"results,omitempty"`
}

// Author is the author of a job's commit.
type Author struct {
	Name  string `json:"name"`
	Email string `json:"email"`
}

// AppendJobEvent returns journal with e appended as a line.
func AppendJobEvent(journal []byte, e JobEvent) ([]byte, error) {
	e.Version, e.Type = JobEventVersion, TypeJobEvent
	e.Time = e.Time.UTC()
	line, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encode job event: %w", err)
	}
	out := bytes.TrimRight(append([]byte(nil), journal...), "\n")
	if len(out) > 0 {
		out = append(out, '\n')
	}
	return append(append(out, line...), '\n'), nil
}

// DecodeJobEvents reads the events in one journal note, in order. Lines
// that are not job events of a version this build reads are skipped and
// counted, so a newer fluxd's events do not hide the rest.
func DecodeJobEvents(journal []byte) (events []JobEvent, skipped int) {
	for _, line := range bytes.Split(journal, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		var e JobEvent
		if json.Unmarshal(line, &e) != nil || e.Type != TypeJobEvent || e.Version < 1 || e.Version > JobEventVersion || e.JobID == "" {
			skipped++
			continue
		}
		events = append(events, e)
	}
	return events, skipped
}
