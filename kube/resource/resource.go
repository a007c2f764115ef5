// Package resource holds the small, dependency-free vocabulary shared by
// gitstate, kube, sync, notes and server: resource IDs, manifest files read
// from git, and the change set a sync produces. It must not import client-go,
// libgit2 or any other engine.
package resource

import (
	"fmt"
	"regexp"
	"strings"
)

// ClusterScope is the namespace part of the ID of a cluster-scoped object.
const ClusterScope = "<cluster>"

// ID names a Kubernetes object as `<namespace>:<kind>/<name>`, Flux v1's
// resource ID. The kind is lower-case. Cluster-scoped objects use the
// namespace `<cluster>`.
type ID struct {
	Namespace string
	Kind      string
	Name      string
}

var (
	idRE       = regexp.MustCompile(`^(<cluster>|[A-Za-z0-9_-]+):([A-Za-z0-9_-]+)/([A-Za-z0-9_.:-]+)$`)
	legacyIDRE = regexp.MustCompile(`^([A-Za-z0-9_-]+)/([A-Za-z0-9_.:-]+)$`)
)

// MakeID builds an ID, lower-casing the kind and using ClusterScope for an
// empty namespace.
func MakeID(namespace, kind, name string) ID {
	if namespace == "" {
		namespace = ClusterScope
	}
	return ID{Namespace: namespace, Kind: strings.ToLower(kind), Name: name}
}

// ParseID parses `<namespace>:<kind>/<name>`, and the legacy
// `<namespace>/<name>` form, whose kind is `service`.
func ParseID(s string) (ID, error) {
	if m := idRE.FindStringSubmatch(s); m != nil {
		return ID{Namespace: m[1], Kind: strings.ToLower(m[2]), Name: m[3]}, nil
	}
	if m := legacyIDRE.FindStringSubmatch(s); m != nil {
		return ID{Namespace: m[1], Kind: "service", Name: m[2]}, nil
	}
	return ID{}, fmt.Errorf("invalid resource ID %q: want <namespace>:<kind>/<name>, e.g. default:deployment/podinfo", s)
}

func (id ID) String() string {
	if id == (ID{}) {
		return ""
	}
	return id.Namespace + ":" + id.Kind + "/" + id.Name
}

// MarshalText makes an ID a plain JSON string, also as a map key.
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText parses an ID from JSON; "" is the zero ID.
func (id *ID) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*id = ID{}
		return nil
	}
	p, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = p
	return nil
}

// File is one manifest file read from git: its path relative to the
// repository root, and its bytes.
type File struct {
	Path string
	Data []byte
}
