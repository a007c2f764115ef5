package notes

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/fluxd/fluxd/kube/resource"
)

// JobRecordVersion is the version of the JobRecord JSON this build writes.
const JobRecordVersion = 1

// TypeJob is the "type" of a JobRecord.
const TypeJob = "job"

// DefaultJobNotesRef is the notes ref of job records (--git-notes-ref).
const DefaultJobNotesRef = "refs/notes/flux"

// Job kinds, the "kind" of a JobRecord. They are the "type" of Flux v1's
// update spec, which fluxctl users and scripts know.
const (
	KindImage      = "image"      // release of an image to workloads
	KindContainers = "containers" // release of images to named containers
	KindPolicy     = "policy"     // policy changes (lock, automate, tag filters...)
	KindAuto       = "auto"       // automated release
)

// JobRecord is the note a job writes on the commit it made, in the job
// notes ref (refs/notes/flux unless --git-notes-ref says otherwise).
// `git log --notes=flux` shows it under the commit message.
type JobRecord struct {
	Version int    `json:"version"`
	Type    string `json:"type"`
	JobID   string `json:"jobID"`
	Kind    string `json:"kind"`
	// Time is when the job made the commit.
	Time  time.Time `json:"time"`
	Cause Cause     `json:"cause"`
	// Spec is what was asked for, as the API received it. It is opaque
	// here: the API layer encodes and decodes it.
	Spec json.RawMessage `json:"spec,omitempty"`
	// Results is what the job did to each workload it considered.
	Results map[resource.ID]WorkloadResult `json:"results,omitempty"`
}

// Cause says who asked for a job, and why.
type Cause struct {
	User    string `json:"user,omitempty"`
	Message string `json:"message,omitempty"`
}

// WorkloadStatus is what a job did to one workload.
type WorkloadStatus string

// Workload statuses, as Flux v1 names them.
const (
	WorkloadSuccess WorkloadStatus = "success" // changed in the commit
	WorkloadSkipped WorkloadStatus = "skipped" // left alone, for the reason in Error
	WorkloadFailed  WorkloadStatus = "failed"  // could not be changed, for the reason in Error
	WorkloadIgnored WorkloadStatus = "ignored" // not a subject of the job, for the reason in Error
	WorkloadUnknown WorkloadStatus = "unknown"
)

// The standard WorkloadResult.Error texts. Most are Flux v1's, which
// fluxctl users know; ReasonNoChange is fluxd's, for a workload the job
// would have changed had it not already been as asked.
const (
	ReasonLocked         = "locked"
	ReasonIgnore         = "ignore"
	ReasonNotIncluded    = "not included"
	ReasonExcluded       = "excluded"
	ReasonDifferentImage = "a different image"
	ReasonNotInCluster   = "not accessible in cluster"
	ReasonNotInRepo      = "not found in repository"
	ReasonImageNotFound  = "cannot find one or more images"
	ReasonImageUpToDate  = "image(s) up to date"
	ReasonDoesNotUse     = "does not use image(s)"
	ReasonNoChange       = "no change"
	// Format with the comma-separated container names.
	ReasonContainerNotFound    = "container(s) not found: %s"
	ReasonContainerTagMismatch = "container(s) tag mismatch: %s"
)

// WorkloadResult is what a job did to one workload.
type WorkloadResult struct {
	Status WorkloadStatus `json:"status"`
	// Error says why the workload was skipped, ignored or failed.
	Error string `json:"error,omitempty"`
	// Containers lists the image changes made to its containers.
	Containers []ContainerUpdate `json:"containers,omitempty"`
}

// ContainerUpdate is one container's image change.
type ContainerUpdate struct {
	Container string `json:"container"`
	Current   string `json:"current"`
	Target    string `json:"target"`
}

// NewJobRecord builds the record of job id of kind, made at.
func NewJobRecord(id, kind string, spec json.RawMessage, cause Cause, at time.Time, results map[resource.ID]WorkloadResult) JobRecord {
	return JobRecord{
		Version: JobRecordVersion,
		Type:    TypeJob,
		JobID:   id,
		Kind:    kind,
		Time:    at.UTC().Truncate(time.Second),
		Cause:   cause,
		Spec:    spec,
		Results: results,
	}
}

// Encode renders the record as indented JSON, readable in `git log --notes`.
func (r JobRecord) Encode() ([]byte, error) {
	if r.JobID == "" {
		return nil, errors.New("job note has no job ID")
	}
	if len(r.Spec) > 0 && !json.Valid(r.Spec) {
		return nil, fmt.Errorf("job %s: spec is not valid JSON", r.JobID)
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("job %s: encode note: %w", r.JobID, err)
	}
	return append(b, '\n'), nil
}

// ErrNotJobNote is wrapped by DecodeJobRecord's error for a note that is
// not a job record at all (another type, or not JSON), as opposed to a job
// record this build cannot read.
var ErrNotJobNote = errors.New("not a job note")

// DecodeJobRecord parses a job note. A note of another type or of a newer
// version is an error that says so, never a half-read record.
//
// It also reads the notes Flux v1 wrote in refs/notes/flux, which have no
// type or version ({"jobID", "spec", "result"}), so that the jobs of a
// repository Flux v1 used stay readable; they come back as Version 0.
func DecodeJobRecord(b []byte) (JobRecord, error) {
	var head struct {
		Version int    `json:"version"`
		Type    string `json:"type"`
		JobID   string `json:"jobID"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return JobRecord{}, fmt.Errorf("%w: job note is not JSON: %w", ErrNotJobNote, err)
	}
	if head.Type == "" && head.Version == 0 && head.JobID != "" {
		return decodeFluxV1Note(b)
	}
	if head.Type != TypeJob {
		return JobRecord{}, fmt.Errorf("%w: note has type %q, want %q", ErrNotJobNote, head.Type, TypeJob)
	}
	if head.Version < 1 || head.Version > JobRecordVersion {
		return JobRecord{}, fmt.Errorf("job note version %d is not supported by this fluxd (it reads up to %d): upgrade fluxd", head.Version, JobRecordVersion)
	}
	var r JobRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return JobRecord{}, fmt.Errorf("decode job note: %w", err)
	}
	if r.JobID == "" {
		return JobRecord{}, errors.New("job note has no job ID")
	}
	return r, nil
}

// decodeFluxV1Note reads a note Flux v1 wrote: its spec is the update
// envelope {"type", "cause": {"Message", "User"}, "spec"}, and its result
// is ID -> {"Status", "Error", "PerContainer"}.
func decodeFluxV1Note(b []byte) (JobRecord, error) {
	var v1 struct {
		JobID string          `json:"jobID"`
		Spec  json.RawMessage `json:"spec"`
		// Keys are decoded one by one below: a legacy ID that does not
		// parse must not lose the whole record.
		Result map[string]struct {
			Status       string
			Error        string
			PerContainer []struct{ Container, Current, Target string }
		} `json:"result"`
	}
	if err := json.Unmarshal(b, &v1); err != nil {
		return JobRecord{}, fmt.Errorf("decode Flux v1 job note: %w", err)
	}
	var envelope struct {
		Type  string                         `json:"type"`
		Cause struct{ Message, User string } `json:"cause"`
	}
	if len(v1.Spec) > 0 {
		if err := json.Unmarshal(v1.Spec, &envelope); err != nil {
			return JobRecord{}, fmt.Errorf("decode Flux v1 job note %s: spec: %w", v1.JobID, err)
		}
	}
	r := JobRecord{
		Type:  TypeJob,
		JobID: v1.JobID,
		Kind:  envelope.Type,
		Cause: Cause{User: envelope.Cause.User, Message: envelope.Cause.Message},
		Spec:  v1.Spec,
	}
	for key, res := range v1.Result {
		id, err := resource.ParseID(key)
		if err != nil {
			continue
		}
		wr := WorkloadResult{Status: WorkloadStatus(strings.ToLower(res.Status)), Error: res.Error}
		for _, c := range res.PerContainer {
			wr.Containers = append(wr.Containers, ContainerUpdate{Container: c.Container, Current: c.Current, Target: c.Target})
		}
		if r.Results == nil {
			r.Results = map[resource.ID]WorkloadResult{}
		}
		r.Results[id] = wr
	}
	return r, nil
}
