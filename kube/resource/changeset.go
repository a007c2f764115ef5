package resource

// Action is what a sync did, or would do, to one object.
type Action string

const (
	Created    Action = "created"
	Configured Action = "configured"
	Unchanged  Action = "unchanged"
	Pruned     Action = "pruned"
	Skipped    Action = "skipped" // ignored by annotation, or pruning blocked
	Failed     Action = "failed"
)

// Change is the outcome for one object. Source is the manifest file it came
// from ("" for an object pruned because it left git).
type Change struct {
	ID     ID     `json:"id"`
	Source string `json:"source,omitempty"`
	Action Action `json:"action"`
	Error  string `json:"error,omitempty"`
}

// ChangeSet is the result of applying the manifests of one commit.
type ChangeSet struct {
	Changes []Change `json:"changes"`
	// ParseErrors are files (or documents in them) that could not be turned
	// into objects. Any parse error blocks pruning.
	ParseErrors []FileError `json:"parseErrors,omitempty"`
	// PruneBlocked says why nothing was pruned although pruning is enabled.
	PruneBlocked string `json:"pruneBlocked,omitempty"`
}

// FileError is a problem with one manifest file, or with one object in it.
type FileError struct {
	Path   string `json:"path"`
	Object string `json:"object,omitempty"`
	Error  string `json:"error"`
}

// Count returns how many changes have the given action.
func (cs ChangeSet) Count(a Action) int {
	n := 0
	for _, c := range cs.Changes {
		if c.Action == a {
			n++
		}
	}
	return n
}

// Failures returns every failure: parse errors and failed objects.
func (cs ChangeSet) Failures() []FileError {
	out := append([]FileError(nil), cs.ParseErrors...)
	for _, c := range cs.Changes {
		if c.Action == Failed {
			out = append(out, FileError{Path: c.Source, Object: c.ID.String(), Error: c.Error})
		}
	}
	return out
}

// OK reports whether everything parsed and applied.
func (cs ChangeSet) OK() bool { return len(cs.Failures()) == 0 }
