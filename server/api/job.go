package api

import (
	"github.com/fluxd/fluxd/kube/resource"
	"github.com/fluxd/fluxd/notes"
)

// JobStatusString is the state of a job.
type JobStatusString string

const (
	JobQueued    JobStatusString = "queued"
	JobRunning   JobStatusString = "running"
	JobSucceeded JobStatusString = "succeeded"
	JobFailed    JobStatusString = "failed"
)

// JobStatus is the answer to GET /v6/jobs?id=. All keys are always
// present. fluxctl stops polling at succeeded with an empty Err, and fails
// at failed or at succeeded with a non-empty Err.
type JobStatus struct {
	Result       JobResult
	Err          string
	StatusString JobStatusString
}

// JobResult is what a job did; {} while it is queued or running.
//
// An executed image or containers release has all three fields; a plan
// has no Revision; a policy job has Spec and Result (Status only), and
// Revision if it committed; a sync job has only Revision, the branch head.
// A Revision is always a full SHA: fluxctl crashes on one shorter than 7.
type JobResult struct {
	Revision string       `json:"revision,omitempty"`
	Spec     *Spec        `json:"spec,omitempty"`
	Result   UpdateResult `json:"result,omitempty"`
}

// UpdateResult is the outcome of an update, by workload.
type UpdateResult map[resource.ID]WorkloadResult

// WorkloadUpdateStatus summarises what an update did to one workload.
type WorkloadUpdateStatus string

const (
	WorkloadSuccess WorkloadUpdateStatus = "success"
	WorkloadFailed  WorkloadUpdateStatus = "failed"
	WorkloadSkipped WorkloadUpdateStatus = "skipped"
	WorkloadIgnored WorkloadUpdateStatus = "ignored"
	WorkloadUnknown WorkloadUpdateStatus = "unknown"
)

// WorkloadResult is what an update did to one workload.
type WorkloadResult struct {
	Status WorkloadUpdateStatus
	// Error says why the workload was skipped, ignored or failed; the
	// Reason constants are the texts fluxctl users know.
	Error        string `json:",omitempty"`
	PerContainer []ContainerUpdate
}

// The standard WorkloadResult.Error texts, the same as in the job notes.
const (
	ReasonLocked         = notes.ReasonLocked
	ReasonIgnore         = notes.ReasonIgnore
	ReasonNotIncluded    = notes.ReasonNotIncluded
	ReasonExcluded       = notes.ReasonExcluded
	ReasonDifferentImage = notes.ReasonDifferentImage
	ReasonNotInCluster   = notes.ReasonNotInCluster
	ReasonNotInRepo      = notes.ReasonNotInRepo
	ReasonImageNotFound  = notes.ReasonImageNotFound
	ReasonImageUpToDate  = notes.ReasonImageUpToDate
	ReasonDoesNotUse     = notes.ReasonDoesNotUse
	// Format with the comma-separated container names.
	ReasonContainerNotFound    = notes.ReasonContainerNotFound
	ReasonContainerTagMismatch = notes.ReasonContainerTagMismatch
)
