package resource

import (
	"sort"
	"strings"
)

// Policy names, as in Flux v1 (the keys of ControllerStatus.Policies and
// of policy updates).
const (
	PolicyAutomated  = "automated"
	PolicyLocked     = "locked"
	PolicyLockedMsg  = "locked_msg"
	PolicyLockedUser = "locked_user"
	PolicyIgnore     = "ignore"
	PolicyTagPrefix  = "tag."
	PolicyTagAll     = "tag_all"
)

// Annotation prefixes that carry policies: fluxd writes the first and reads
// both, and an edit keeps the prefix a manifest already uses.
const (
	AnnotationPrefix       = "fluxcd.io/"
	LegacyAnnotationPrefix = "flux.weave.works/"
	// FilterAnnotationPrefix is Flux v1's other spelling of tag.<container>.
	FilterAnnotationPrefix = "filter.fluxcd.io/"
)

// Policies are a workload's policies: name -> value.
type Policies map[string]string

// PoliciesFromAnnotations reads the policies in a manifest's annotations.
// The current prefix wins over the legacy one when both are set.
func PoliciesFromAnnotations(annotations map[string]string) Policies {
	out := Policies{}
	for _, prefix := range []string{LegacyAnnotationPrefix, AnnotationPrefix} {
		for k, v := range annotations {
			if name, ok := strings.CutPrefix(k, prefix); ok && isPolicyName(name) {
				out[name] = v
			}
		}
	}
	for k, v := range annotations {
		if c, ok := strings.CutPrefix(k, FilterAnnotationPrefix); ok && c != "" {
			if _, set := out[PolicyTagPrefix+c]; !set {
				out[PolicyTagPrefix+c] = v
			}
		}
	}
	return out
}

func isPolicyName(name string) bool {
	switch name {
	case PolicyAutomated, PolicyLocked, PolicyLockedMsg, PolicyLockedUser, PolicyIgnore:
		return true
	}
	return strings.HasPrefix(name, PolicyTagPrefix) && len(name) > len(PolicyTagPrefix)
}

// Has reports whether a boolean policy is set ("true").
func (p Policies) Has(name string) bool { return p[name] == "true" }

// Automated reports whether automated releases are on.
func (p Policies) Automated() bool { return p.Has(PolicyAutomated) }

// Locked reports whether the workload is locked.
func (p Policies) Locked() bool { return p.Has(PolicyLocked) }

// Ignored reports whether sync ignores the workload ("true" or "sync_only").
func (p Policies) Ignored() bool {
	return p[PolicyIgnore] == "true" || p[PolicyIgnore] == "sync_only"
}

// TagFilter returns the tag filter of a container, "" if none.
func (p Policies) TagFilter(container string) string { return p[PolicyTagPrefix+container] }

// Names returns the policy names, sorted.
func (p Policies) Names() []string {
	out := make([]string, 0, len(p))
	for k := range p {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
