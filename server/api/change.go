package api

import (
	"encoding/json"
	"fmt"
)

// ChangeKind is what a notification is about.
type ChangeKind string

const (
	// GitChange: a branch of a git repository moved.
	GitChange ChangeKind = "git"
	// ImageChange: an image repository has a new image.
	ImageChange ChangeKind = "image"
)

// Change is the body of POST /v11/notify, e.g.
// {"Kind":"git","Source":{"URL":"...","Branch":"main"}} or
// {"Kind":"image","Source":{"Name":{"Domain":"ghcr.io","Image":"org/app"}}}.
// Exactly one of Git and Image is set, the one Kind names.
type Change struct {
	Kind  ChangeKind
	Git   *GitUpdate
	Image *ImageUpdate
}

// GitUpdate names the repository and branch that moved.
type GitUpdate struct {
	URL    string
	Branch string
}

// ImageUpdate names the image repository that has a new image.
type ImageUpdate struct {
	Name ImageName
}

type changeJSON struct {
	Kind   ChangeKind
	Source json.RawMessage
}

// MarshalJSON writes {"Kind", "Source"}.
func (c Change) MarshalJSON() ([]byte, error) {
	var src any
	switch c.Kind {
	case GitChange:
		src = c.Git
	case ImageChange:
		src = c.Image
	default:
		return nil, fmt.Errorf("unknown kind of change %q", c.Kind)
	}
	b, err := json.Marshal(src)
	if err != nil {
		return nil, err
	}
	return json.Marshal(changeJSON{Kind: c.Kind, Source: b})
}

// UnmarshalJSON decodes the Source that Kind names; any other kind, or a
// Source of the wrong shape, is an error.
func (c *Change) UnmarshalJSON(b []byte) error {
	var w changeJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	if len(w.Source) == 0 {
		if w.Kind != GitChange && w.Kind != ImageChange {
			return fmt.Errorf("unknown kind of change %q: want git or image", w.Kind)
		}
		return fmt.Errorf("%s change has no Source", w.Kind)
	}
	switch w.Kind {
	case GitChange:
		var g GitUpdate
		if err := json.Unmarshal(w.Source, &g); err != nil {
			return fmt.Errorf("git change: %w", err)
		}
		*c = Change{Kind: GitChange, Git: &g}
	case ImageChange:
		var i ImageUpdate
		if err := json.Unmarshal(w.Source, &i); err != nil {
			return fmt.Errorf("image change: Source must be {\"Name\":{\"Domain\":...,\"Image\":...}}: %w", err)
		}
		*c = Change{Kind: ImageChange, Image: &i}
	default:
		return fmt.Errorf("unknown kind of change %q: want git or image", w.Kind)
	}
	return nil
}
