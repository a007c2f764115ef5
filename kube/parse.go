package kube

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/fluxd/fluxd/kube/resource"
)

// Object is one Kubernetes object read from a manifest file.
type Object struct {
	// Source is the path of the manifest file, as in resource.File.
	Source string
	Obj    *unstructured.Unstructured
}

// ID is the object's resource ID as written in the manifest. A namespaced
// object without a namespace has the namespace resource.ClusterScope here;
// Sync, which knows which kinds are namespaced, puts it in the default
// namespace.
func (o Object) ID() resource.ID {
	return resource.MakeID(o.Obj.GetNamespace(), o.Obj.GetKind(), o.Obj.GetName())
}

// Ignore is the object's ignore policy, from its annotations.
func (o Object) Ignore() Ignore { return IgnoreOf(o.Obj.GetAnnotations()) }

// Parse reads Kubernetes objects from manifest files: multi-document YAML
// (documents separated by `---`; empty and comment-only documents are
// skipped) and JSON (one or more objects). A List (kind `List`, or any kind
// ending in `List` with `items`) gives its items.
//
// Each document that cannot be read gives a FileError naming the file and,
// when known, the object; the file's other documents are still read. So does
// an object without apiVersion, kind or metadata.name. Two objects with the
// same resource ID are both dropped, with an error naming both files: which
// one to apply is not for fluxd to guess.
func Parse(files []resource.File) ([]Object, []resource.FileError) {
	parsed := make([]parsedFile, len(files))
	parallel(runtime.GOMAXPROCS(0), len(files), func(i int) { parsed[i] = parseFile(files[i]) })
	return merge(parsed)
}

// parsedFile is what one file holds.
type parsedFile struct {
	objs []Object
	errs []resource.FileError
}

// merge concatenates the objects and errors of parsed files and drops
// duplicates.
func merge(parsed []parsedFile) ([]Object, []resource.FileError) {
	var (
		objs []Object
		errs []resource.FileError
	)
	for _, p := range parsed {
		objs = append(objs, p.objs...)
		errs = append(errs, p.errs...)
	}

	first := make(map[resource.ID]int, len(objs))
	dup := map[int]bool{}
	for i, o := range objs {
		id := o.ID()
		j, ok := first[id]
		if !ok {
			first[id] = i
			continue
		}
		where := objs[j].Source
		if where == o.Source {
			where = "the same file"
		}
		errs = append(errs, resource.FileError{
			Path:   o.Source,
			Object: id.String(),
			Error:  fmt.Sprintf("duplicate definition of %s (also in %s)", id, where),
		})
		dup[i], dup[j] = true, true
	}
	if len(dup) > 0 {
		kept := objs[:0]
		for i, o := range objs {
			if !dup[i] {
				kept = append(kept, o)
			}
		}
		objs = kept
	}
	return objs, errs
}

// parseCache keeps the parsed files of the last Sync, keyed by path and
// content, so that a re-sync of the same revision parses nothing. Cached
// objects are shared and never modified.
type parseCache struct {
	mu    sync.Mutex
	files map[parseKey]parsedFile
}

type parseKey struct {
	path string
	sum  [sha256.Size]byte
}

// parse is Parse through the cache.
func (pc *parseCache) parse(files []resource.File) ([]Object, []resource.FileError) {
	keys := make([]parseKey, len(files))
	parsed := make([]parsedFile, len(files))
	var miss []int
	pc.mu.Lock()
	for i, f := range files {
		keys[i] = parseKey{path: f.Path, sum: sha256.Sum256(f.Data)}
		p, ok := pc.files[keys[i]]
		if ok {
			parsed[i] = p
		} else {
			miss = append(miss, i)
		}
	}
	pc.mu.Unlock()
	parallel(runtime.GOMAXPROCS(0), len(miss), func(j int) {
		i := miss[j]
		parsed[i] = parseFile(files[i])
	})
	next := make(map[parseKey]parsedFile, len(files))
	for i := range files {
		next[keys[i]] = parsed[i]
	}
	pc.mu.Lock()
	pc.files = next
	pc.mu.Unlock()
	return merge(parsed)
}

func parseFile(f resource.File) parsedFile {
	var p parsedFile
	if utilyaml.IsJSONBuffer(f.Data) {
		p.objs, p.errs = parseJSON(f)
	} else {
		p.objs, p.errs = parseYAML(f)
	}
	return p
}

// parseYAML reads the documents of a YAML stream one by one with
// apimachinery's YAMLReader, so that a broken document does not hide the
// ones after it.
func parseYAML(f resource.File) ([]Object, []resource.FileError) {
	var (
		objs   []Object
		errs   []resource.FileError
		cursor int // offset in f.Data after the last document found
	)
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(f.Data)))
	for doc := 1; ; doc++ {
		data, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			// A bad separator line; the reader has moved past it.
			errs = append(errs, resource.FileError{Path: f.Path, Error: fmt.Sprintf("document %d: %v", doc, err)})
			continue
		}
		// Find where the document starts, for line numbers in errors.
		// YAMLReader returns whole lines of the input (CRLF line ends
		// become LF, in which case the line is unknown).
		line := 0
		if body := bytes.TrimRight(data, "\n"); len(body) > 0 {
			if i := bytes.Index(f.Data[cursor:], body); i >= 0 {
				line = 1 + bytes.Count(f.Data[:cursor+i], []byte("\n"))
				cursor += i + len(body)
			}
		}
		where := fmt.Sprintf("document %d", doc)
		if line > 0 {
			shown := line
			if bytes.HasPrefix(data, []byte("---")) {
				shown++ // a leading separator is part of the first document
			}
			where = fmt.Sprintf("document %d (line %d)", doc, shown)
		}

		js, err := yaml.YAMLToJSON(data)
		if err != nil {
			if line > 1 {
				// Parse again behind line-1 empty lines so that the
				// parser's "line N" counts from the top of the file.
				pad := append(bytes.Repeat([]byte("\n"), line-1), data...)
				if _, perr := yaml.YAMLToJSON(pad); perr != nil {
					err = perr
				}
			}
			errs = append(errs, resource.FileError{Path: f.Path, Error: fmt.Sprintf("%s: %v", where, err)})
			continue
		}
		o, e := decodeDocument(f.Path, where, js)
		objs = append(objs, o...)
		errs = append(errs, e...)
	}
	return objs, errs
}

// parseJSON reads a stream of JSON values.
func parseJSON(f resource.File) ([]Object, []resource.FileError) {
	var (
		objs []Object
		errs []resource.FileError
	)
	d := json.NewDecoder(bytes.NewReader(f.Data))
	for doc := 1; ; doc++ {
		var raw json.RawMessage
		start := d.InputOffset()
		err := d.Decode(&raw)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			// The stream cannot be resynchronised after a syntax error.
			off := start
			var se *json.SyntaxError
			if errors.As(err, &se) {
				off = se.Offset
			}
			line := 1 + bytes.Count(f.Data[:min(int(off), len(f.Data))], []byte("\n"))
			errs = append(errs, resource.FileError{Path: f.Path, Error: fmt.Sprintf("document %d: line %d: invalid JSON: %v", doc, line, err)})
			break
		}
		line := 1 + bytes.Count(f.Data[:start], []byte("\n"))
		if trimmed := bytes.TrimLeft(f.Data[start:], " \t\r\n"); len(trimmed) > 0 {
			line += bytes.Count(f.Data[start:len(f.Data)-len(trimmed)], []byte("\n"))
		}
		o, e := decodeDocument(f.Path, fmt.Sprintf("document %d (line %d)", doc, line), raw)
		objs = append(objs, o...)
		errs = append(errs, e...)
	}
	return objs, errs
}

// decodeDocument turns one document, as JSON, into objects: none for an
// empty document, the items of a List, or the object itself.
func decodeDocument(path, where string, js []byte) ([]Object, []resource.FileError) {
	var v interface{}
	// apimachinery's json keeps integers as int64, as client-go expects.
	if err := utiljson.Unmarshal(js, &v); err != nil {
		return nil, []resource.FileError{{Path: path, Error: fmt.Sprintf("%s: %v", where, err)}}
	}
	if v == nil {
		return nil, nil // empty or comment-only
	}
	m, ok := v.(map[string]interface{})
	if !ok {
		return nil, []resource.FileError{{Path: path, Error: fmt.Sprintf("%s: not a Kubernetes object (want a mapping with apiVersion, kind and metadata), got %s", where, describeJSON(v))}}
	}
	u := &unstructured.Unstructured{Object: m}
	if isList(u) {
		items, _ := m["items"].([]interface{})
		var (
			objs []Object
			errs []resource.FileError
		)
		for i, it := range items {
			iwhere := fmt.Sprintf("%s, %s item %d", where, u.GetKind(), i+1)
			im, ok := it.(map[string]interface{})
			if !ok {
				errs = append(errs, resource.FileError{Path: path, Error: fmt.Sprintf("%s: not a Kubernetes object, got %s", iwhere, describeJSON(it))})
				continue
			}
			o, err := checkObject(path, iwhere, &unstructured.Unstructured{Object: im})
			if err != nil {
				errs = append(errs, *err)
				continue
			}
			objs = append(objs, o)
		}
		return objs, errs
	}
	o, err := checkObject(path, where, u)
	if err != nil {
		return nil, []resource.FileError{*err}
	}
	return []Object{o}, nil
}

// isList reports whether u is a List: kind List, or a kind ending in List
// with an items array.
func isList(u *unstructured.Unstructured) bool {
	kind, _ := u.Object["kind"].(string)
	if !strings.HasSuffix(kind, "List") {
		return false
	}
	items, ok := u.Object["items"]
	if !ok {
		return kind == "List" // an empty v1/List
	}
	_, ok = items.([]interface{})
	return ok || items == nil
}

// checkObject checks that u has what applying it needs.
func checkObject(path, where string, u *unstructured.Unstructured) (Object, *resource.FileError) {
	var missing []string
	if s, ok := u.Object["apiVersion"].(string); !ok || s == "" {
		missing = append(missing, "apiVersion")
	}
	if s, ok := u.Object["kind"].(string); !ok || s == "" {
		missing = append(missing, "kind")
	}
	md, hasMD := u.Object["metadata"]
	mdm, isMap := md.(map[string]interface{})
	if hasMD && !isMap {
		return Object{}, &resource.FileError{Path: path, Object: describeObject(u), Error: fmt.Sprintf("%s: metadata is not a mapping", where)}
	}
	if name, ok := mdm["name"]; ok && name != nil {
		if _, isString := name.(string); !isString {
			return Object{}, &resource.FileError{Path: path, Object: describeObject(u), Error: fmt.Sprintf("%s: metadata.name is not a string (%v); quote it", where, name)}
		}
	}
	if s, ok := mdm["name"].(string); !ok || s == "" {
		if _, gen := mdm["generateName"]; gen {
			missing = append(missing, "metadata.name (generateName cannot be applied)")
		} else {
			missing = append(missing, "metadata.name")
		}
	}
	if ns, ok := mdm["namespace"]; ok && ns != nil {
		if _, isString := ns.(string); !isString {
			return Object{}, &resource.FileError{Path: path, Object: describeObject(u), Error: fmt.Sprintf("%s: metadata.namespace is not a string", where)}
		}
	}
	if len(missing) > 0 {
		return Object{}, &resource.FileError{Path: path, Object: describeObject(u), Error: fmt.Sprintf("%s: missing %s", where, strings.Join(missing, ", "))}
	}
	return Object{Source: path, Obj: u}, nil
}

// describeObject names an object for an error, as far as it is known.
func describeObject(u *unstructured.Unstructured) string {
	kind, name := u.GetKind(), u.GetName()
	if kind == "" && name == "" {
		return ""
	}
	if kind == "" {
		kind = "<no kind>"
	}
	if name == "" {
		name = "<no name>"
	}
	return resource.MakeID(u.GetNamespace(), kind, name).String()
}

func describeJSON(v interface{}) string {
	switch v.(type) {
	case []interface{}:
		return "a list"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return "a number"
}
