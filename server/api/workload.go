package api

import (
	"fmt"

	"github.com/fluxd/fluxd/kube/resource"
)

// ReadOnlyReason says why fluxd cannot change a workload; "" when it can.
type ReadOnlyReason string

const (
	ReadOnlyOK       ReadOnlyReason = ""
	ReadOnlyMissing  ReadOnlyReason = "NotInRepo"    // in the cluster, not in git
	ReadOnlySystem   ReadOnlyReason = "System"       // a system workload
	ReadOnlyNoRepo   ReadOnlyReason = "NoRepo"       // no git repo configured
	ReadOnlyNotReady ReadOnlyReason = "NotReady"     // the repo is not cloned yet
	ReadOnlyROMode   ReadOnlyReason = "ReadOnlyMode" // fluxd runs with --git-readonly
)

// Workload rollout states, the Status of a ControllerStatus.
const (
	StatusReady    = "ready"
	StatusUpdating = "updating"
	StatusStarted  = "started"
	StatusError    = "error"
	StatusUnknown  = "unknown"
)

// ControllerStatus is one workload in list-workloads (GET /v6/services,
// /v11/services). Every key is always present; nil lists and maps are null.
type ControllerStatus struct {
	ID resource.ID
	// Containers has only Name and Current.ID filled, from the live
	// object, and RepoImage when git says otherwise; [] when none.
	Containers []Container
	ReadOnly   ReadOnlyReason
	Status     string
	Rollout    RolloutStatus
	// SyncError is the last sync error of this workload, or "".
	SyncError string
	// Antecedent is the resource that generated this one, if any.
	Antecedent resource.ID
	Labels     map[string]string
	Automated  bool
	Locked     bool
	Ignore     bool
	// Policies maps policy name to value, e.g. "tag.app": "semver:~1".
	Policies map[string]string
}

// RolloutStatus is the progress of a workload's rollout, in pods.
// fluxctl release --watch stops when Messages is non-null.
type RolloutStatus struct {
	Desired   int
	Updated   int
	Ready     int
	Available int
	Outdated  int
	Messages  []string
}

// ImageStatus is one workload in list-images (GET /v6/images, /v10/images).
type ImageStatus struct {
	ID         resource.ID
	Containers []Container
}

// Container is one container of a workload, with its running image and
// the images available for it. Current and LatestFiltered are always
// present; the other fields only when set.
type Container struct {
	Name           string `json:",omitempty"`
	Current        Info
	LatestFiltered Info
	// Available is every image of the repository, newest first, ignoring
	// the tag filter.
	Available []Info `json:",omitempty"`
	// AvailableError says why Available is empty, if it is.
	AvailableError          string `json:",omitempty"`
	AvailableImagesCount    int    `json:",omitempty"`
	NewAvailableImagesCount int    `json:",omitempty"`
	// Filtered counts are of the images that pass the tag filter.
	FilteredImagesCount    int `json:",omitempty"`
	NewFilteredImagesCount int `json:",omitempty"`
	// RepoImage is fluxd's own, in list-workloads only: the image the
	// manifest in git gives this container, at the commit the sync tag
	// marks, when it is not Current.ID (the live one). It is absent when
	// the two agree, and when git has no such container. It is a plain
	// string, not an ImageRef, so that a malformed image in a manifest
	// cannot make the whole answer undecodable; Flux v1's fluxctl ignores it.
	RepoImage string `json:",omitempty"`
}

// ContainerFields are the names the containerFields query parameter of
// list-images may name.
var ContainerFields = []string{
	"Name",
	"Current",
	"LatestFiltered",
	"Available",
	"AvailableError",
	"AvailableImagesCount",
	"NewAvailableImagesCount",
	"FilteredImagesCount",
	"NewFilteredImagesCount",
}

// CheckContainerFields returns an error for the first name that is not
// one of ContainerFields.
func CheckContainerFields(fields []string) error {
next:
	for _, f := range fields {
		for _, known := range ContainerFields {
			if f == known {
				continue next
			}
		}
		return fmt.Errorf("%s is an invalid field", f)
	}
	return nil
}

// OnlyFields returns c with every field not named in fields zeroed. No
// fields means all of them. Names must have passed CheckContainerFields.
func (c Container) OnlyFields(fields []string) Container {
	if len(fields) == 0 {
		return c
	}
	var out Container
	for _, f := range fields {
		switch f {
		case "Name":
			out.Name = c.Name
		case "Current":
			out.Current = c.Current
		case "LatestFiltered":
			out.LatestFiltered = c.LatestFiltered
		case "Available":
			out.Available = c.Available
		case "AvailableError":
			out.AvailableError = c.AvailableError
		case "AvailableImagesCount":
			out.AvailableImagesCount = c.AvailableImagesCount
		case "NewAvailableImagesCount":
			out.NewAvailableImagesCount = c.NewAvailableImagesCount
		case "FilteredImagesCount":
			out.FilteredImagesCount = c.FilteredImagesCount
		case "NewFilteredImagesCount":
			out.NewFilteredImagesCount = c.NewFilteredImagesCount
		}
	}
	return out
}

// NoImageData is the AvailableError when fluxd has no registry metadata
// for an image (yet).
const NoImageData = "image data not available"
