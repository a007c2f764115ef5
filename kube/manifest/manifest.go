package manifest

import (
	"errors"
	"fmt"
	"strings"

	yaml "go.yaml.in/yaml/v3"

	"github.com/fluxd/fluxd/kube/resource"
)

var (
	// ErrNotFound: the object is not in the file.
	ErrNotFound = errors.New("object not found in the manifest file")
	// ErrContainerNotFound: the workload has no container of that name. The
	// error returned is a *ContainerNotFoundError.
	ErrContainerNotFound = errors.New("container not found")
	// ErrDuplicate: the object is in the file more than once, so which one
	// to edit is not for fluxd to guess.
	ErrDuplicate = errors.New("object appears more than once in the manifest file")
	// ErrUnsupported: the edit cannot be made by changing the file in place,
	// e.g. the annotations are an alias of an anchor that other objects
	// share. The file needs a person.
	ErrUnsupported = errors.New("manifest cannot be edited in place")
)

// ContainerNotFoundError names the container asked for and those there are.
type ContainerNotFoundError struct {
	ID        resource.ID
	Container string
	Have      []string
}

func (e *ContainerNotFoundError) Error() string {
	if len(e.Have) == 0 {
		return fmt.Sprintf("container %q not found in %s: it has no containers", e.Container, e.ID)
	}
	return fmt.Sprintf("container %q not found in %s; its containers are: %s", e.Container, e.ID, strings.Join(e.Have, ", "))
}

func (e *ContainerNotFoundError) Unwrap() error { return ErrContainerNotFound }

// Object is one Kubernetes object in a manifest file.
type Object struct {
	ID         resource.ID
	APIVersion string
	Kind       string // as written
	// Annotations are metadata.annotations (values that are not strings
	// are given as written).
	Annotations map[string]string
	// Containers are the pod template's init containers and containers, in
	// file order, for the kinds that have one (Workload).
	Containers []Container
	// Where the object is: Doc is the 0-based index of its YAML document in
	// the file, Item its 0-based index in a List's items (-1 when it is not
	// in a List), Line the 1-based line where it starts.
	Doc, Item, Line int
}

// Container is one container of a workload's pod template.
type Container struct {
	Name  string
	Image string
	Init  bool // an init container
}

// Policies are the object's policies, read from its annotations.
func (o Object) Policies() resource.Policies {
	return resource.PoliciesFromAnnotations(o.Annotations)
}

// Workload reports whether the object's kind runs containers: Deployment,
// DaemonSet, StatefulSet, ReplicaSet, Job, CronJob or Pod.
func (o Object) Workload() bool { return resource.PodSpecPath(o.ID.Kind) != nil }

// clusterScoped are the kinds whose objects have no namespace; their IDs use
// resource.ClusterScope.
var clusterScoped = map[string]bool{
	"namespace":                        true,
	"node":                             true,
	"persistentvolume":                 true,
	"storageclass":                     true,
	"clusterrole":                      true,
	"clusterrolebinding":               true,
	"customresourcedefinition":         true,
	"mutatingwebhookconfiguration":     true,
	"validatingwebhookconfiguration":   true,
	"validatingadmissionpolicy":        true,
	"validatingadmissionpolicybinding": true,
	"apiservice":                       true,
	"priorityclass":                    true,
	"runtimeclass":                     true,
	"ingressclass":                     true,
	"csidriver":                        true,
	"csinode":                          true,
	"volumeattachment":                 true,
	"podsecuritypolicy":                true,
	"certificatesigningrequest":        true,
	"flowschema":                       true,
	"prioritylevelconfiguration":       true,
}

// Objects lists the objects in a manifest file, in file order: the items of
// a List (kind List, or any kind ending in List with items) rather than the
// List. An object's namespace is metadata.namespace, else defaultNamespace
// (resource.ClusterScope when that is empty too); objects of the known
// cluster-scoped kinds (Namespace, ClusterRole, CustomResourceDefinition...)
// always have resource.ClusterScope. Documents that are empty, hold only
// comments, or are not objects (no kind or no metadata.name) are skipped. A
// file that does not parse gives a *ParseError with the line.
func Objects(data []byte, defaultNamespace string) ([]Object, error) {
	f, err := parseFile(data)
	if err != nil {
		return nil, err
	}
	var out []Object
	for _, o := range f.objects(defaultNamespace) {
		obj := Object{
			ID:          o.id,
			APIVersion:  scalar(get(o.m, "apiVersion")),
			Kind:        scalar(get(o.m, "kind")),
			Annotations: map[string]string{},
			Doc:         o.doc,
			Item:        o.item,
			Line:        o.m.Line,
		}
		if anns := resolve(get(resolve(get(o.m, "metadata")), "annotations")); anns != nil && anns.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(anns.Content); i += 2 {
				obj.Annotations[resolve(anns.Content[i]).Value] = scalar(anns.Content[i+1])
			}
		}
		for _, c := range containers(o.m, o.id.Kind) {
			obj.Containers = append(obj.Containers, Container{Name: scalar(get(c.m, "name")), Image: scalar(get(c.m, "image")), Init: c.init})
		}
		out = append(out, obj)
	}
	return out, nil
}

// objNode is an object found in a file.
type objNode struct {
	id        resource.ID
	doc, item int
	m         *yaml.Node // the object's mapping
}

func (f *file) objects(defaultNamespace string) []objNode {
	var out []objNode
	for d, doc := range f.docs {
		if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
			continue
		}
		root := doc.Content[0]
		if root.Kind != yaml.MappingNode {
			continue
		}
		kind := scalar(get(root, "kind"))
		if items := resolve(get(root, "items")); strings.HasSuffix(kind, "List") && items != nil && items.Kind == yaml.SequenceNode {
			for i, it := range items.Content {
				if o, ok := object(it, defaultNamespace); ok {
					o.doc, o.item = d, i
					out = append(out, o)
				}
			}
			continue
		}
		if o, ok := object(root, defaultNamespace); ok {
			o.doc, o.item = d, -1
			out = append(out, o)
		}
	}
	return out
}

func object(m *yaml.Node, defaultNamespace string) (objNode, bool) {
	if m.Kind != yaml.MappingNode {
		return objNode{}, false
	}
	kind := scalar(get(m, "kind"))
	meta := resolve(get(m, "metadata"))
	name := scalar(get(meta, "name"))
	if kind == "" || name == "" {
		return objNode{}, false
	}
	ns := scalar(get(meta, "namespace"))
	switch {
	case clusterScoped[strings.ToLower(kind)]:
		ns = resource.ClusterScope
	case ns == "":
		ns = defaultNamespace
	}
	return objNode{id: resource.MakeID(ns, kind, name), m: m}, true
}

// find returns the one object with the ID.
func (f *file) find(id resource.ID, defaultNamespace string) (objNode, error) {
	var found []objNode
	for _, o := range f.objects(defaultNamespace) {
		if o.id == id {
			found = append(found, o)
		}
	}
	switch len(found) {
	case 0:
		return objNode{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	case 1:
		return found[0], nil
	}
	return objNode{}, fmt.Errorf("%w: %s (%d times)", ErrDuplicate, id, len(found))
}

type containerNode struct {
	m    *yaml.Node
	init bool
}

// containers are the container mappings of a workload's pod spec: init
// containers first, as a pod starts them.
func containers(obj *yaml.Node, kind string) []containerNode {
	path := resource.PodSpecPath(kind)
	if path == nil {
		return nil
	}
	spec := obj
	for _, k := range path {
		spec = resolve(get(spec, k))
	}
	var out []containerNode
	for _, list := range []string{"initContainers", "containers"} {
		seq := resolve(get(spec, list))
		if seq == nil || seq.Kind != yaml.SequenceNode {
			continue
		}
		for _, c := range seq.Content {
			if c = resolve(c); c.Kind == yaml.MappingNode {
				out = append(out, containerNode{m: c, init: list == "initContainers"})
			}
		}
	}
	return out
}

// resolve follows an alias.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

// get is the value of key in mapping m (nil when m is not a mapping or has
// no such key).
func get(m *yaml.Node, key string) *yaml.Node {
	if i := keyIndex(m, key); i >= 0 {
		return m.Content[2*i+1]
	}
	return nil
}

// keyIndex is the index of the first pair of m with the key, -1 if none.
func keyIndex(m *yaml.Node, key string) int {
	m = resolve(m)
	if m == nil || m.Kind != yaml.MappingNode {
		return -1
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k := resolve(m.Content[i]); k.Kind == yaml.ScalarNode && k.Value == key {
			return i / 2
		}
	}
	return -1
}

// scalar is the value of a scalar node, "" for anything else.
func scalar(n *yaml.Node) string {
	n = resolve(n)
	if n == nil || n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return ""
	}
	return n.Value
}
