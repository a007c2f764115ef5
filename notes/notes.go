// Package notes defines the typed, versioned records fluxd keeps in git
// notes, and the names of the refs that hold them:
//
//   - refs/notes/flux-sync/<cluster>: one SyncRecord per commit a sync of
//     that cluster applied, written only by that cluster's fluxd;
//   - refs/tags/flux-sync/<cluster>: the annotated sync tag, on the last
//     commit applied to that cluster.
//
// A person reads the same records with `git log --notes=flux-sync/<cluster>`
// and `git show flux-sync/<cluster>`.
package notes

import (
	"encoding/json"
	"fmt"
	"regexp"
	"time"

	"github.com/fluxd/fluxd/kube/resource"
)

// SyncRecordVersion is the version of the SyncRecord JSON this build writes.
const SyncRecordVersion = 1

// Record types, the "type" field of every note.
const (
	TypeSync = "sync"
)

// SyncRecord is the note a sync writes on the commit it applied.
type SyncRecord struct {
	Version int       `json:"version"`
	Type    string    `json:"type"`
	Time    time.Time `json:"time"`
	Cluster string    `json:"cluster"`
	Commit  string    `json:"commit"`
	// Duration of the sync, in milliseconds.
	DurationMS int64  `json:"durationMs"`
	Counts     Counts `json:"counts"`
	// Errors lists every file or object that failed, with why.
	Errors []resource.FileError `json:"errors,omitempty"`
	// PruneBlocked says why garbage collection did not run, if it did not.
	PruneBlocked string `json:"pruneBlocked,omitempty"`
}

// Counts are the objects a sync touched, by outcome.
type Counts struct {
	Applied   int `json:"applied"` // created or configured
	Unchanged int `json:"unchanged"`
	Pruned    int `json:"pruned"`
	Skipped   int `json:"skipped"`
	Failed    int `json:"failed"` // objects and files that failed
}

// CountsOf summarises a change set.
func CountsOf(cs resource.ChangeSet) Counts {
	return Counts{
		Applied:   cs.Count(resource.Created) + cs.Count(resource.Configured),
		Unchanged: cs.Count(resource.Unchanged),
		Pruned:    cs.Count(resource.Pruned),
		Skipped:   cs.Count(resource.Skipped),
		Failed:    len(cs.Failures()),
	}
}

// NewSyncRecord builds the record of a sync of commit that produced cs.
func NewSyncRecord(cluster, commit string, at time.Time, took time.Duration, cs resource.ChangeSet) SyncRecord {
	return SyncRecord{
		Version:      SyncRecordVersion,
		Type:         TypeSync,
		Time:         at.UTC().Truncate(time.Second),
		Cluster:      cluster,
		Commit:       commit,
		DurationMS:   took.Milliseconds(),
		Counts:       CountsOf(cs),
		Errors:       cs.Failures(),
		PruneBlocked: cs.PruneBlocked,
	}
}

// OK reports whether the sync applied everything.
func (r SyncRecord) OK() bool { return r.Counts.Failed == 0 && len(r.Errors) == 0 }

// Encode renders the record as indented JSON, readable in `git log --notes`.
func (r SyncRecord) Encode() ([]byte, error) {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// DecodeSyncRecord parses a sync note. A note of another type or of a newer
// version is an error that says so, never a half-read record.
func DecodeSyncRecord(b []byte) (SyncRecord, error) {
	var head struct {
		Version int    `json:"version"`
		Type    string `json:"type"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return SyncRecord{}, fmt.Errorf("sync note is not JSON: %w", err)
	}
	if head.Type != TypeSync {
		return SyncRecord{}, fmt.Errorf("note has type %q, want %q", head.Type, TypeSync)
	}
	if head.Version < 1 || head.Version > SyncRecordVersion {
		return SyncRecord{}, fmt.Errorf("sync note version %d is not supported by this fluxd (it reads up to %d): upgrade fluxd", head.Version, SyncRecordVersion)
	}
	var r SyncRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return SyncRecord{}, fmt.Errorf("decode sync note: %w", err)
	}
	return r, nil
}

var clusterNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// ValidateClusterName checks that name can be part of a ref name and a
// Kubernetes label value.
func ValidateClusterName(name string) error {
	if !clusterNameRE.MatchString(name) || regexp.MustCompile(`\.\.|\.lock$|[._-]$`).MatchString(name) {
		return fmt.Errorf("invalid cluster name %q: use 1-63 letters, digits, '.', '_' or '-', starting and ending with a letter or digit", name)
	}
	return nil
}

// SyncTag is the name of the sync tag of cluster, e.g. flux-sync/prod.
func SyncTag(cluster string) string { return "flux-sync/" + cluster }

// SyncNotesRef is the notes ref of cluster's sync records.
func SyncNotesRef(cluster string) string { return "refs/notes/flux-sync/" + cluster }
