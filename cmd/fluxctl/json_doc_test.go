package main

import (
	"bytes"
	"encoding"
	"encoding/json"
	"maps"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/fluxd/fluxd/server/api"
)

// jsonOutputs is what each fluxctl command prints with -o json: a value
// of the Go type it marshals, or nil for a command that prints no JSON.
// A new command needs an entry here and a section in JSON.md.
var jsonOutputs = map[string]any{
	"version":        VersionJSON{},
	"status":         api.Status{},
	"sync":           SyncJSON{},
	"list-workloads": []api.ControllerStatus{},
	"list-images":    []api.ImageStatus{},
	"save":           nil,
	"automate":       api.JobStatus{},
	"deautomate":     api.JobStatus{},
	"lock":           api.JobStatus{},
	"unlock":         api.JobStatus{},
	"policy":         api.JobStatus{},
	"diff":           []api.ObjectDiff{},
	"check-release":  api.JobStatus{},
	"identity":       api.PublicKey{},
	"completion":     nil,
}

// interfaceVariants are the types a field of interface type holds.
var interfaceVariants = map[reflect.Type][]reflect.Type{
	reflect.TypeFor[api.Update](): {
		reflect.TypeFor[api.ReleaseImageSpec](), reflect.TypeFor[api.ReleaseContainersSpec](),
		reflect.TypeFor[api.PolicyUpdates](), reflect.TypeFor[api.ManualSync](), reflect.TypeFor[api.Automated](),
	},
}

// jsonKey is one key of a JSON object, and the Go type of its value (nil
// when it is not known: a leaf).
type jsonKey struct {
	name string
	typ  reflect.Type
}

var (
	marshalerType     = reflect.TypeFor[json.Marshaler]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
)

func implements(t, iface reflect.Type) bool {
	return t.Implements(iface) || reflect.PointerTo(t).Implements(iface)
}

// objectKeys returns the keys of the JSON object t marshals to, or ok
// false when t is not a JSON object. A type with its own MarshalJSON is
// marshalled, fully populated, to learn them.
func objectKeys(t *testing.T, typ reflect.Type) (keys []jsonKey, ok bool) {
	t.Helper()
	switch {
	case implements(typ, marshalerType):
		b, err := json.Marshal(populated(typ, 0).Interface())
		if err != nil {
			t.Fatalf("marshal a populated %s: %v", typ, err)
		}
		if !bytes.HasPrefix(b, []byte("{")) {
			return nil, false
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		var m map[string]json.RawMessage
		if err := dec.Decode(&m); err != nil {
			t.Fatal(err)
		}
		for k := range m {
			key := jsonKey{name: k}
			if typ.Kind() == reflect.Struct {
				if f, ok := typ.FieldByNameFunc(func(n string) bool { return strings.EqualFold(n, k) }); ok {
					key.typ = f.Type
				}
			}
			keys = append(keys, key)
		}
		return keys, true
	case implements(typ, textMarshalerType), typ.Kind() != reflect.Struct:
		return nil, false
	}
	for i := range typ.NumField() {
		f := typ.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" || (!f.IsExported() && !f.Anonymous) {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			sub, _ := objectKeys(t, f.Type)
			keys = append(keys, sub...)
			continue
		}
		if name == "" {
			name = f.Name
		}
		keys = append(keys, jsonKey{name: name, typ: f.Type})
	}
	return keys, true
}

// populated is a value of typ with every field set, for a MarshalJSON
// that omits what is empty.
func populated(typ reflect.Type, depth int) reflect.Value {
	v := reflect.New(typ).Elem()
	if depth > 5 {
		return v
	}
	switch typ.Kind() {
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(1)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(1)
	case reflect.Pointer:
		v.Set(populated(typ.Elem(), depth+1).Addr())
	case reflect.Slice:
		v.Set(reflect.Append(v, populated(typ.Elem(), depth+1)))
	case reflect.Map:
		v.Set(reflect.MakeMap(typ))
		v.SetMapIndex(populated(typ.Key(), depth+1), populated(typ.Elem(), depth+1))
	case reflect.Struct:
		if typ == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Date(2024, 3, 9, 8, 0, 0, 0, time.UTC)))
			break
		}
		for i := range typ.NumField() {
			if typ.Field(i).IsExported() {
				v.Field(i).Set(populated(typ.Field(i).Type, depth+1))
			}
		}
	}
	return v
}

// objectTypes adds to seen every named type of a JSON object with keys
// reachable from typ, with its keys.
func objectTypes(t *testing.T, typ reflect.Type, seen map[reflect.Type][]string) {
	t.Helper()
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	if _, done := seen[typ]; done {
		return
	}
	switch typ.Kind() {
	case reflect.Slice, reflect.Array:
		objectTypes(t, typ.Elem(), seen)
		return
	case reflect.Map:
		objectTypes(t, typ.Elem(), seen)
		return
	case reflect.Interface:
		variants, ok := interfaceVariants[typ]
		if !ok {
			t.Fatalf("a field of interface type %s: add its variants to interfaceVariants", typ)
		}
		for _, v := range variants {
			objectTypes(t, v, seen)
		}
		return
	}
	keys, ok := objectKeys(t, typ)
	if !ok || len(keys) == 0 {
		return
	}
	var names []string
	for _, k := range keys {
		names = append(names, k.name)
	}
	sort.Strings(names)
	seen[typ] = names
	for _, k := range keys {
		if k.typ != nil {
			objectTypes(t, k.typ, seen)
		}
	}
}

// docSections splits JSON.md into its "## " parts, each into its "### "
// sections (by heading), each as its lines.
func docSections(t *testing.T) map[string]map[string][]string {
	t.Helper()
	b, err := os.ReadFile("JSON.md")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string][]string{}
	part, section := "", ""
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(line, "## "):
			part, section = strings.TrimPrefix(line, "## "), ""
			out[part] = map[string][]string{}
		case strings.HasPrefix(line, "### "):
			section = strings.TrimPrefix(line, "### ")
			if _, dup := out[part][section]; dup {
				t.Errorf("JSON.md: two sections %q in %q", section, part)
			}
			out[part][section] = nil
		case part != "" && section != "":
			out[part][section] = append(out[part][section], line)
		}
	}
	return out
}

var (
	rowKey = regexp.MustCompile("^\\| `([^`]+)` \\|([^|]*)\\|([^|]*)\\|([^|]*)\\|$")
	anchor = regexp.MustCompile("\\]\\(#([a-z0-9-]+)\\)")
)

// JSON.md documents, for every command, what -o json prints: each type
// it names has a section whose table lists exactly the type's keys, each
// with a type, where it comes from (Flux v1 or fluxd) and its meaning.
func TestJSONDoc(t *testing.T) {
	doc := docSections(t)
	commands, types := doc["Commands"], doc["Types"]
	if commands == nil || types == nil {
		t.Fatalf("JSON.md has no \"## Commands\" or no \"## Types\": %v", slices.Sorted(maps.Keys(doc)))
	}

	// Every command of fluxctl, and nothing else, has a section.
	var names []string
	for _, n := range fluxctlModel(t).Children {
		names = append(names, n.Name)
		if _, ok := jsonOutputs[n.Name]; !ok {
			t.Errorf("fluxctl %s: say in jsonOutputs what it prints with -o json, and document it in JSON.md", n.Name)
		}
	}
	for cmd := range jsonOutputs {
		if !slices.Contains(names, cmd) {
			t.Errorf("jsonOutputs has %s, which is no command of fluxctl", cmd)
		}
	}
	for section := range commands {
		if !slices.Contains(names, strings.TrimPrefix(section, "fluxctl ")) {
			t.Errorf("JSON.md documents %q, which is no command of fluxctl", section)
		}
	}

	reachable := map[reflect.Type][]string{}
	for cmd, v := range jsonOutputs {
		lines, ok := commands["fluxctl "+cmd]
		if !ok {
			t.Errorf("JSON.md has no section \"### fluxctl %s\" under \"## Commands\"", cmd)
			continue
		}
		text := strings.Join(lines, "\n")
		if v == nil {
			if !strings.Contains(strings.ToLower(text), "not json") {
				t.Errorf("JSON.md, fluxctl %s: it prints no JSON; say so (\"not JSON\")", cmd)
			}
			continue
		}
		typ := reflect.TypeOf(v)
		objectTypes(t, typ, reachable)
		for typ.Kind() == reflect.Slice {
			typ = typ.Elem()
		}
		if link := "[" + typ.Name() + "](#" + strings.ToLower(typ.Name()) + ")"; !strings.Contains(text, link) {
			t.Errorf("JSON.md, fluxctl %s: it prints %s; link it, %s", cmd, reflect.TypeOf(v), link)
		}
	}

	byName := map[string][]string{}
	for typ, keys := range reachable {
		if _, dup := byName[typ.Name()]; dup {
			t.Errorf("two types named %s are printed: give the sections distinct names", typ.Name())
		}
		byName[typ.Name()] = keys
	}
	for name, keys := range byName {
		lines, ok := types[name]
		if !ok {
			t.Errorf("JSON.md has no section \"### %s\" under \"## Types\", with the keys %v", name, keys)
			continue
		}
		var documented []string
		for _, l := range lines {
			m := rowKey.FindStringSubmatch(l)
			if m == nil {
				continue
			}
			documented = append(documented, m[1])
			if typ, from, meaning := strings.TrimSpace(m[2]), strings.TrimSpace(m[3]), strings.TrimSpace(m[4]); typ == "" || (from != "Flux v1" && from != "fluxd") || meaning == "" {
				t.Errorf("JSON.md, %s.%s: want a type, \"Flux v1\" or \"fluxd\", and a meaning: %s", name, m[1], l)
			}
		}
		for _, k := range keys {
			if !slices.Contains(documented, k) {
				t.Errorf("JSON.md, %s: the key %q is not documented", name, k)
			}
		}
		for _, k := range documented {
			if !slices.Contains(keys, k) {
				t.Errorf("JSON.md, %s: documents %q, which %s does not have (it has %v)", name, k, name, keys)
			}
		}
	}
	for name := range types {
		if _, ok := byName[name]; !ok {
			t.Errorf("JSON.md documents the type %s, which no command prints", name)
		}
	}
	// Every link points at a section.
	all, _ := os.ReadFile("JSON.md")
	for _, m := range anchor.FindAllStringSubmatch(string(all), -1) {
		found := false
		for part := range doc {
			for section := range doc[part] {
				if githubAnchor(section) == m[1] {
					found = true
				}
			}
		}
		if !found {
			t.Errorf("JSON.md links to #%s, which is no section", m[1])
		}
	}
}

// githubAnchor is the anchor GitHub gives a heading.
func githubAnchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteByte('-')
		}
	}
	return b.String()
}
