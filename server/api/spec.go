package api

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/fluxd/fluxd/kube/resource"
)

// Update types, the "type" of a Spec.
const (
	UpdateImage      = "image"
	UpdateContainers = "containers"
	UpdatePolicy     = "policy"
	UpdateSync       = "sync"
	UpdateAuto       = "auto"
)

// Cause says who asked for an update, and why. A non-empty Message
// becomes the commit message; User is the commit author only when fluxd
// runs with --git-set-author.
type Cause struct {
	Message string
	User    string
}

// Spec is the body of POST /v9/update-manifests: a tagged union of the
// update variants. Spec holds ReleaseImageSpec, ReleaseContainersSpec,
// PolicyUpdates, ManualSync or Automated, matching Type.
type Spec struct {
	Type  string `json:"type"`
	Cause Cause  `json:"cause"`
	Spec  Update `json:"spec"`
}

// Update is one of the variants of a Spec. The set is closed.
type Update interface {
	updateType() string
}

func (ReleaseImageSpec) updateType() string      { return UpdateImage }
func (ReleaseContainersSpec) updateType() string { return UpdateContainers }
func (PolicyUpdates) updateType() string         { return UpdatePolicy }
func (ManualSync) updateType() string            { return UpdateSync }
func (Automated) updateType() string             { return UpdateAuto }

// UnmarshalJSON decodes the variant that "type" names. An unknown type, a
// missing "spec" or a spec of the wrong shape is an error (400 on the
// wire); "auto" decodes, and Validate rejects it.
func (s *Spec) UnmarshalJSON(b []byte) error {
	var w struct {
		Type  string          `json:"type"`
		Cause Cause           `json:"cause"`
		Spec  json.RawMessage `json:"spec"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	var (
		u   Update
		err error
	)
	switch w.Type {
	case UpdateImage:
		var v ReleaseImageSpec
		if err = unmarshalSpec(w.Type, w.Spec, &v); err == nil {
			u = v
		}
	case UpdateContainers:
		var v ReleaseContainersSpec
		if err = unmarshalSpec(w.Type, w.Spec, &v); err == nil {
			u = v
		}
	case UpdatePolicy:
		var v PolicyUpdates
		if err = unmarshalSpec(w.Type, w.Spec, &v); err == nil {
			u = v
		}
	case UpdateSync:
		var v ManualSync
		if err = unmarshalSpec(w.Type, w.Spec, &v); err == nil {
			u = v
		}
	case UpdateAuto:
		var v Automated
		if err = unmarshalSpec(w.Type, w.Spec, &v); err == nil {
			u = v
		}
	default:
		return fmt.Errorf("unknown update spec type %q: want image, containers, policy or sync", w.Type)
	}
	if err != nil {
		return err
	}
	*s = Spec{Type: w.Type, Cause: w.Cause, Spec: u}
	return nil
}

func unmarshalSpec(typ string, raw json.RawMessage, v any) error {
	if len(raw) == 0 {
		return fmt.Errorf("update spec of type %q has no \"spec\"", typ)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("decode %q update spec: %w", typ, err)
	}
	return nil
}

// Validate checks what decoding cannot: that Spec matches Type, and the
// values of each variant. A Spec that fails it is answered 422. Automated
// updates are fluxd's own: a client may not ask for one.
func (s Spec) Validate() error {
	if s.Spec == nil {
		return fmt.Errorf("update spec of type %q has no \"spec\"", s.Type)
	}
	if s.Type == UpdateAuto {
		return fmt.Errorf("unknown update type %q", s.Type)
	}
	if got := s.Spec.updateType(); got != s.Type {
		return fmt.Errorf("update spec type %q does not match its spec, which is of type %q", s.Type, got)
	}
	switch v := s.Spec.(type) {
	case ReleaseImageSpec:
		return v.Validate()
	case ReleaseContainersSpec:
		return v.Validate()
	case PolicyUpdates:
		return v.Validate()
	}
	return nil
}

// ResourceSpec is a workload ID, or ResourceSpecAll.
type ResourceSpec string

// ResourceSpecAll means every workload.
const ResourceSpecAll ResourceSpec = "<all>"

// ParseResourceSpec accepts "<all>" or a workload ID, which it returns in
// its canonical form.
func ParseResourceSpec(s string) (ResourceSpec, error) {
	if s == string(ResourceSpecAll) {
		return ResourceSpecAll, nil
	}
	id, err := resource.ParseID(s)
	if err != nil {
		return "", fmt.Errorf("invalid workload spec: %w", err)
	}
	return ResourceSpec(id.String()), nil
}

// ID returns the workload ID; ok is false for "<all>" or an invalid spec.
func (s ResourceSpec) ID() (id resource.ID, ok bool) {
	if s == ResourceSpecAll {
		return resource.ID{}, false
	}
	id, err := resource.ParseID(string(s))
	return id, err == nil
}

// ImageSpec is an image reference with a tag or digest, or
// ImageSpecLatest.
type ImageSpec string

// ImageSpecLatest means the latest allowed image of every container.
const ImageSpecLatest ImageSpec = "<all latest>"

// ParseImageSpec accepts "<all latest>" or an image reference with a tag
// or digest.
func ParseImageSpec(s string) (ImageSpec, error) {
	if s == string(ImageSpecLatest) {
		return ImageSpecLatest, nil
	}
	ref, err := ParseImageRef(s)
	if err != nil {
		return "", err
	}
	if ref.Tag() == "" && ref.Digest() == "" {
		return "", fmt.Errorf("%w %q: it has no tag (to mean latest, say :latest)", ErrInvalidImageRef, s)
	}
	return ImageSpec(s), nil
}

// ReleaseKind says whether a release is only planned or also executed.
type ReleaseKind string

const (
	// ReleaseKindPlan is a dry run: no commit.
	ReleaseKindPlan ReleaseKind = "plan"
	// ReleaseKindExecute commits and pushes the change.
	ReleaseKindExecute ReleaseKind = "execute"
)

// ParseReleaseKind accepts "plan" or "execute".
func ParseReleaseKind(s string) (ReleaseKind, error) {
	switch k := ReleaseKind(s); k {
	case ReleaseKindPlan, ReleaseKindExecute:
		return k, nil
	}
	return "", fmt.Errorf("invalid release kind %q: want plan or execute", s)
}

// ReleaseImageSpec releases one image, or the latest images, to some
// workloads ("image").
type ReleaseImageSpec struct {
	// ServiceSpecs are workload IDs, or "<all>", which overrides the rest.
	ServiceSpecs []ResourceSpec
	ImageSpec    ImageSpec
	Kind         ReleaseKind
	Excludes     []resource.ID
	// Force skips locks only when workloads are named, and tag filters
	// only for a specific image.
	Force bool
}

// Validate checks every field.
func (s ReleaseImageSpec) Validate() error {
	if len(s.ServiceSpecs) == 0 {
		return errors.New("release names no workloads: give workload IDs or <all>")
	}
	for _, w := range s.ServiceSpecs {
		if _, err := ParseResourceSpec(string(w)); err != nil {
			return err
		}
	}
	if _, err := ParseImageSpec(string(s.ImageSpec)); err != nil {
		return err
	}
	_, err := ParseReleaseKind(string(s.Kind))
	return err
}

// ReleaseContainersSpec sets the images of named containers
// ("containers", from fluxctl release --interactive).
type ReleaseContainersSpec struct {
	Kind           ReleaseKind
	ContainerSpecs map[resource.ID][]ContainerUpdate
	SkipMismatches bool
	Force          bool
}

// Validate checks every field.
func (s ReleaseContainersSpec) Validate() error {
	if _, err := ParseReleaseKind(string(s.Kind)); err != nil {
		return err
	}
	if len(s.ContainerSpecs) == 0 {
		return errors.New("release names no containers")
	}
	for id, us := range s.ContainerSpecs {
		for _, u := range us {
			if u.Container == "" {
				return fmt.Errorf("%s: a container update has no container name", id)
			}
		}
	}
	return nil
}

// ContainerUpdate is one container's image change. Current and Target
// must be well-formed references.
type ContainerUpdate struct {
	Container string
	Current   ImageRef
	Target    ImageRef
}

// PolicyUpdates are policy changes by workload ("policy").
type PolicyUpdates map[resource.ID]PolicyUpdate

// Validate checks the policy names.
func (p PolicyUpdates) Validate() error {
	for id, u := range p {
		for _, set := range []PolicySet{u.Add, u.Remove} {
			for name := range set {
				if name == "" {
					return fmt.Errorf("%s: empty policy name", id)
				}
			}
		}
	}
	return nil
}

// PolicyUpdate adds and removes policies of one workload. Only the keys
// of Remove matter, and Remove wins over Add for the same key.
type PolicyUpdate struct {
	Add    PolicySet `json:"add"`
	Remove PolicySet `json:"remove"`
}

// PolicySet maps policy name to value.
type PolicySet map[string]string

// UnmarshalJSON accepts an object, or an array of names (each "true").
func (s *PolicySet) UnmarshalJSON(b []byte) error {
	var m map[string]string
	if err := json.Unmarshal(b, &m); err == nil {
		*s = m
		return nil
	}
	var names []string
	if err := json.Unmarshal(b, &names); err != nil {
		return fmt.Errorf("policy set: want an object of policy names to values, or an array of names: %w", err)
	}
	m = make(map[string]string, len(names))
	for _, n := range names {
		m[n] = "true"
	}
	*s = m
	return nil
}

// Policy names.
const (
	PolicyAutomated  = "automated"
	PolicyLocked     = "locked"
	PolicyLockedUser = "locked_user"
	PolicyLockedMsg  = "locked_msg"
	PolicyIgnore     = "ignore"
	PolicyTagAll     = "tag_all"
	// PolicyTagPrefix + container name is that container's tag filter.
	PolicyTagPrefix = "tag."
)

// ManualSync asks for a fetch and sync now ("sync"); its spec is {}.
type ManualSync struct{}

// Automated is an automated release. fluxd makes them itself; the API
// decodes the type and then rejects it.
type Automated struct {
	Changes []AutoChange
}

// AutoChange is one container an automated release changes.
type AutoChange struct {
	WorkloadID resource.ID
	Container  AutoContainer
	ImageID    ImageRef
}

// AutoContainer names a container and its current image.
type AutoContainer struct {
	Name  string
	Image ImageRef
}
