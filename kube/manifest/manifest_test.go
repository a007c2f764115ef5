package manifest

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v3"
	k8syaml "sigs.k8s.io/yaml"

	"github.com/fluxd/fluxd/kube/resource"
)

func ptr(s string) *string { return &s }

func mustID(t testing.TB, s string) resource.ID {
	t.Helper()
	id, err := resource.ParseID(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

const objectsFile = `# leading comment
---
apiVersion: v1
kind: Namespace
metadata:
  name: shop
  namespace: ignored-for-cluster-scoped
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: cart
  annotations:
    fluxcd.io/automated: "true"
    filter.fluxcd.io/cart: semver:~1
spec:
  template:
    metadata:
      annotations:
        fluxcd.io/locked: "true"
    spec:
      initContainers:
        - name: migrate
          image: example/migrate:1
      containers:
        - name: cart
          image: example/cart:1
---
# only a comment
---
kind: Deployment
metadata: {}
---
apiVersion: v1
kind: List
items:
  - apiVersion: batch/v1
    kind: CronJob
    metadata: {name: nightly, namespace: ops}
    spec:
      jobTemplate:
        spec:
          template:
            spec:
              containers: [{name: job, image: example/job:2}]
  - apiVersion: v1
    kind: Pod
    metadata:
      name: debug
      namespace: ops
    spec:
      containers:
      - name: sh
        image: busybox
  - apiVersion: rbac.authorization.k8s.io/v1
    kind: ClusterRole
    metadata:
      name: reader
`

func TestObjects(t *testing.T) {
	objs, err := Objects([]byte(objectsFile), "shop")
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		id              string
		doc, item, line int
		workload        bool
		containers      []Container
	}
	var got []row
	for _, o := range objs {
		got = append(got, row{o.ID.String(), o.Doc, o.Item, o.Line, o.Workload(), o.Containers})
	}
	want := []row{
		{"<cluster>:namespace/shop", 0, -1, 3, false, nil},
		{"shop:deployment/cart", 1, -1, 9, true, []Container{{"migrate", "example/migrate:1", true}, {"cart", "example/cart:1", false}}},
		{"ops:cronjob/nightly", 4, 0, 37, true, []Container{{"job", "example/job:2", false}}},
		{"ops:pod/debug", 4, 1, 46, true, []Container{{"sh", "busybox", false}}},
		{"<cluster>:clusterrole/reader", 4, 2, 55, false, nil},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got\n%+v\nwant\n%+v", got, want)
	}
	p := objs[1].Policies()
	if !p.Automated() || p.Locked() || p.TagFilter("cart") != "semver:~1" {
		t.Errorf("policies of cart: %v (the pod template's annotations must not count)", p)
	}
	if objs[1].APIVersion != "apps/v1" || objs[1].Kind != "Deployment" {
		t.Errorf("%+v", objs[1])
	}
	// No default namespace: a namespaced object without one is <cluster>,
	// as resource.MakeID does.
	objs, _ = Objects([]byte(objectsFile), "")
	if objs[1].ID.String() != "<cluster>:deployment/cart" {
		t.Errorf("%s", objs[1].ID)
	}
}

func TestParseError(t *testing.T) {
	for _, in := range []string{
		"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  bad: [\n",
		"a: b\n---\nkey: value\n  nested: wrong\n",
	} {
		_, err := Objects([]byte(in), "default")
		var pe *ParseError
		if !errors.As(err, &pe) || pe.Line == 0 || !strings.Contains(err.Error(), "line") {
			t.Errorf("%q: %v", in, err)
		}
		if _, err := SetPolicies([]byte(in), mustID(t, "default:configmap/x"), "default", map[string]*string{"locked": ptr("true")}); !errors.As(err, &pe) {
			t.Errorf("SetPolicies: %v", err)
		}
	}
}

const simple = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
spec:
  template:
    spec:
      containers:
        - name: main
          image: example/app:1
        - name: sidecar
          image: example/side:1
`

func TestErrors(t *testing.T) {
	id := mustID(t, "default:deployment/app")
	_, err := SetPolicies([]byte(simple), mustID(t, "other:deployment/app"), "default", map[string]*string{"locked": ptr("true")})
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "other:deployment/app") {
		t.Errorf("not found: %v", err)
	}
	_, err = SetImage([]byte(simple), mustID(t, "default:deployment/nope"), "default", "main", "x:2")
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("not found: %v", err)
	}
	_, err = SetImage([]byte(simple), id, "default", "missing", "x:2")
	var cnf *ContainerNotFoundError
	if !errors.Is(err, ErrContainerNotFound) || !errors.As(err, &cnf) || !reflect.DeepEqual(cnf.Have, []string{"main", "sidecar"}) ||
		!strings.Contains(err.Error(), "main, sidecar") {
		t.Errorf("container not found: %v", err)
	}
	cm := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n"
	if _, err := SetImage([]byte(cm), mustID(t, "default:configmap/c"), "default", "x", "y:1"); !errors.Is(err, ErrContainerNotFound) {
		t.Errorf("not a workload: %v", err)
	}
	for name, v := range map[string]*string{"tag_all": ptr("glob:*"), "bogus": ptr("x"), "tag.": ptr("x"), "tag.a b": ptr("x"), "locked_msg": ptr("\xff")} {
		if _, err := SetPolicies([]byte(simple), id, "default", map[string]*string{name: v}); err == nil {
			t.Errorf("policy %q accepted", name)
		}
	}
	if _, err := SetImage([]byte(simple), id, "default", "main", "bad image"); err == nil {
		t.Error("an image with a space accepted")
	}
	dup := simple + "---\n" + simple
	if _, err := SetPolicies([]byte(dup), id, "default", map[string]*string{"locked": ptr("true")}); !errors.Is(err, ErrDuplicate) {
		t.Errorf("duplicate: %v", err)
	}
}

// Editing through an alias would change the anchor's other users too.
func TestAliasesRefused(t *testing.T) {
	shared := `apiVersion: v1
kind: List
items:
- apiVersion: apps/v1
  kind: Deployment
  metadata:
    name: a
    annotations: &anns
      fluxcd.io/automated: "true"
- apiVersion: apps/v1
  kind: Deployment
  metadata:
    name: b
    annotations: *anns
`
	for _, name := range []string{"a", "b"} {
		_, err := SetPolicies([]byte(shared), mustID(t, "default:deployment/"+name), "default", map[string]*string{"locked": ptr("true")})
		if !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: %v", name, err)
		}
	}
	image := `apiVersion: apps/v1
kind: Deployment
metadata:
  name: a
spec:
  template:
    spec:
      containers:
        - name: one
          image: &img example/x:1
        - name: two
          image: *img
`
	id := mustID(t, "default:deployment/a")
	if _, err := SetImage([]byte(image), id, "default", "one", "example/x:2"); !errors.Is(err, ErrUnsupported) {
		t.Errorf("anchored image: %v", err)
	}
	// The alias itself can be replaced: only that place changes.
	out, err := SetImage([]byte(image), id, "default", "two", "example/x:2")
	if err != nil || !strings.Contains(string(out), "image: &img example/x:1\n") || !strings.Contains(string(out), "image: example/x:2\n") {
		t.Errorf("alias image: %v\n%s", err, out)
	}
}

func TestNoChangeReturnsData(t *testing.T) {
	id := mustID(t, "default:deployment/app")
	data := []byte(simple)
	for _, set := range []map[string]*string{nil, {"locked": nil}, {"tag.main": nil, "automated": nil}} {
		out, err := SetPolicies(data, id, "default", set)
		if err != nil || &out[0] != &data[0] {
			t.Errorf("%v: %v, not the same bytes", set, err)
		}
	}
	out, err := SetImage(data, id, "default", "main", "example/app:1")
	if err != nil || &out[0] != &data[0] {
		t.Errorf("image: %v, not the same bytes", err)
	}
}

// Setting a policy an object does not have and removing it again gives back
// the file byte for byte, for every object of every golden input.
func TestSetThenRemoveRoundTrip(t *testing.T) {
	inputs, _ := filepath.Glob("testdata/*/in.*")
	inputs = append(inputs, "") // and objectsFile
	for _, path := range inputs {
		data := []byte(objectsFile)
		if path != "" {
			var err error
			if data, err = os.ReadFile(path); err != nil {
				t.Fatal(err)
			}
		}
		objs, err := Objects(data, "default")
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			if len(o.Annotations) == 0 && hasAnnotationsKey(data, o) {
				// `annotations: {}` or null: removing the last policy
				// removes the key, as documented.
				continue
			}
			for _, set := range []map[string]*string{
				{"locked": ptr("true"), "locked_msg": ptr("it's: \"frozen\"\nfor now"), "locked_user": ptr("Jane <j@example.com>")},
				{"automated": ptr("true")},
				{"tag.zz": ptr("semver:~1.2")},
			} {
				skip := false
				for name := range set {
					if _, ok := o.Policies()[name]; ok {
						skip = true
					}
				}
				if skip {
					continue
				}
				out, err := SetPolicies(data, o.ID, "default", set)
				if err != nil {
					t.Errorf("%s %s: set: %v", path, o.ID, err)
					continue
				}
				after, err := Objects(out, "default")
				if err != nil {
					t.Fatalf("%s: %v", path, err)
				}
				for _, a := range after {
					if a.ID == o.ID {
						for name, v := range set {
							if a.Policies()[name] != *v {
								t.Errorf("%s %s: %s = %q, want %q", path, o.ID, name, a.Policies()[name], *v)
							}
						}
					}
				}
				unset := map[string]*string{}
				for name := range set {
					unset[name] = nil
				}
				back, err := SetPolicies(out, o.ID, "default", unset)
				if err != nil {
					t.Errorf("%s %s: remove: %v", path, o.ID, err)
					continue
				}
				if !bytes.Equal(back, data) {
					t.Errorf("%s %s: set %v then remove did not give the file back:\n%s", path, o.ID, set, back)
				}
			}
		}
	}
}

// hasAnnotationsKey reports whether the object has metadata.annotations.
func hasAnnotationsKey(data []byte, o Object) bool {
	f, err := parseFile(data)
	if err != nil {
		return false
	}
	for _, n := range f.objects("default") {
		if n.id == o.ID {
			return keyIndex(get(n.m, "metadata"), "annotations") >= 0
		}
	}
	return false
}

// The values written read back as the same strings, also with Kubernetes'
// YAML 1.1 reading (sigs.k8s.io/yaml), in block and flow mappings and JSON.
func TestValuesReadBack(t *testing.T) {
	values := []string{
		"true", "false", "yes", "no", "on", "off", "y", "n", "null", "~", "", " ", "1", "1.0", "0x1f", "1e3", "0777", "1_000", "12:30",
		"2024-01-02", ".inf", "-", "- x", "? x", ": x", "a: b", "a #b", "a#b", "#x", "&a", "*a", "!x", "|", ">", "%x", "@x", "`x",
		"'q'", `"q"`, "x'y", `x"y`, `back\slash`, "tab\there", "nl\nhere", "trailing\n", "cr\rhere", "  lead", "trail  ", "a  b",
		"{a}", "[a]", "a,b", "a, b", "a?b", "glob:*", "semver:~1.2", "semver:>=1.0 <2.0", "regexp:^v[0-9]+$", "regex:.*",
		"ünïcödé", "日本語", "🚀", "\u2028", "\u0085", "\ufeff", "\x00", "\x7f", "é:1", "ghcr.io/x/y:1.2@sha256:abc",
		"---", "...", "--- x", "Jane <jane@example.com>",
	}
	docs := map[string]string{
		"block":   "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  annotations:\n    other: x\n",
		"flow":    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, annotations: {other: x}}\n",
		"new":     "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n",
		"json":    "{\n  \"apiVersion\": \"v1\",\n  \"kind\": \"ConfigMap\",\n  \"metadata\": {\n    \"name\": \"c\"\n  }\n}\n",
		"plain":   "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  annotations:\n    fluxcd.io/locked_msg: old\n",
		"single":  "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  annotations:\n    fluxcd.io/locked_msg: 'old'\n",
		"literal": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  annotations:\n    fluxcd.io/locked_msg: |\n      old\n      text\n",
	}
	id := mustID(t, "default:configmap/c")
	for dname, doc := range docs {
		for _, v := range values {
			out, err := SetPolicies([]byte(doc), id, "default", map[string]*string{"locked_msg": ptr(v)})
			if err != nil {
				t.Errorf("%s %q: %v", dname, v, err)
				continue
			}
			objs, err := Objects(out, "default")
			if err != nil || objs[0].Annotations["fluxcd.io/locked_msg"] != v {
				t.Errorf("%s %q: read back %q, %v\n%s", dname, v, objs[0].Annotations["fluxcd.io/locked_msg"], err, out)
			}
			var obj struct {
				Metadata struct {
					Annotations map[string]string `json:"annotations"`
				} `json:"metadata"`
			}
			if err := k8syaml.Unmarshal(out, &obj); err != nil || obj.Metadata.Annotations["fluxcd.io/locked_msg"] != v {
				t.Errorf("%s %q: Kubernetes reads %q, %v\n%s", dname, v, obj.Metadata.Annotations["fluxcd.io/locked_msg"], err, out)
			}
		}
	}
}

// The end of every kind of value is found: replacing it changes that value
// only.
func TestValueSpans(t *testing.T) {
	values := []string{
		`plain`, `plain with spaces`, `plain # comment`, `plain	# tab comment`, "plain\n      continued\n\n      after blank",
		`"double"`, `"dou\"ble # not a comment"`, "\"multi\n      line\"", `'single'`, `'it''s # not'`, "'multi\n     line'",
		"|\n      literal\n      block", "|+\n      kept\n", "|-\n      stripped", ">\n      folded\n      text", "|2\n        indented", "| # comment\n      x",
		`&anchor value`, `!!str tagged`, `!!str &a both`, `""`, `''`, `a:b`, `x#y`,
		"[a, b]", "{a: b, c: [d]}", "[\n      a,\n      b\n    ]", "{a: b,\n  c: d}", "", "null", "~", "123", "true",
	}
	for _, v := range values {
		in := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  annotations:\n    first: " + v + "\n    fluxcd.io/locked_msg: " + v + "\n    last: " + v + "\n# end\n"
		if _, err := Objects([]byte(in), "default"); err != nil {
			t.Errorf("%q: test input: %v", v, err)
			continue
		}
		out, err := SetPolicies([]byte(in), mustID(t, "default:configmap/c"), "default", map[string]*string{"locked_msg": ptr("new")})
		if err != nil {
			t.Errorf("%q: %v", v, err)
			continue
		}
		if !bytes.Contains(out, []byte("fluxcd.io/locked_msg: ")) || !strings.HasSuffix(string(out), "    last: "+v+"\n# end\n") {
			t.Errorf("%q:\n%s", v, out)
		}
		// And removing it leaves first and last as they were.
		out, err = SetPolicies([]byte(in), mustID(t, "default:configmap/c"), "default", map[string]*string{"locked_msg": nil})
		want := strings.Replace(in, "    fluxcd.io/locked_msg: "+v+"\n", "", 1)
		if err != nil || string(out) != want {
			t.Errorf("%q: remove: %v\n%s", v, err, out)
		}
	}
}

func TestKeepsOtherDocumentsExactly(t *testing.T) {
	in := "\ufeff# BOM and comments\n---\n" + simple + "...\n# between\n--- # marker comment\n" + strings.Replace(simple, "name: app", "name: other", 1) + "---\n"
	out, err := SetImage([]byte(in), mustID(t, "default:deployment/other"), "default", "sidecar", "example/side:2")
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Replace(in, "example/side:1\n---\n", "example/side:2\n---\n", 1)
	if string(out) != want {
		t.Errorf("got\n%q\nwant\n%q", out, want)
	}
}

func TestCanonicalSeesChanges(t *testing.T) {
	parse := func(s string) [32]byte {
		var n yaml.Node
		if err := yaml.Unmarshal([]byte(s), &n); err != nil {
			t.Fatal(err)
		}
		return canonical(&n)
	}
	if parse("a: 1\nb: x # c\n") != parse("b: 'x'\na: 1") {
		t.Error("styles, comments and key order must not matter")
	}
	for _, pair := range [][2]string{{"a: 1", "a: '1'"}, {"a: &x 1\nb: *x", "a: 1\nb: 1"}, {"a: [1]", "a: [1, 1]"}, {"a: {}", "a: []"}} {
		if parse(pair[0]) == parse(pair[1]) {
			t.Errorf("%q and %q compare equal", pair[0], pair[1])
		}
	}
}

// Every golden input, also with CR LF line breaks, without its last line
// break, with a byte order mark, and after a comment and a document marker:
// every policy edit and every image edit of every object works, and a set
// policy removed again gives the file back.
func TestVariants(t *testing.T) {
	inputs, _ := filepath.Glob("testdata/*/in.*")
	variants := map[string]func(string) string{
		"as is": func(s string) string { return s },
		"crlf":  func(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n") },
		"no final break": func(s string) string {
			return strings.TrimRight(s, "\r\n")
		},
		"bom":    func(s string) string { return "\ufeff" + s },
		"header": func(s string) string { return "# header\n---\n" + s },
	}
	for _, path := range inputs {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for vname, variant := range variants {
			if strings.HasSuffix(path, ".json") && vname == "header" {
				continue
			}
			data := []byte(variant(string(raw)))
			objs, err := Objects(data, "default")
			if err != nil {
				t.Fatalf("%s %s: %v", path, vname, err)
			}
			for _, o := range objs {
				for _, name := range []string{"automated", "locked", "locked_msg", "tag.app"} {
					for _, v := range []*string{ptr("true"), ptr("a: \"b\"\nc"), nil} {
						out, err := SetPolicies(data, o.ID, "default", map[string]*string{name: v})
						if errors.Is(err, ErrUnsupported) && strings.Contains(path, "anchors-aliases") && name == "tag.app" {
							continue // its value is an anchor others use
						}
						if err != nil {
							t.Errorf("%s %s %s %s=%v: %v", path, vname, o.ID, name, v, err)
							continue
						}
						if _, had := o.Policies()[name]; v == nil || had || (len(o.Annotations) == 0 && hasAnnotationsKey(data, o)) {
							continue
						}
						back, err := SetPolicies(out, o.ID, "default", map[string]*string{name: nil})
						if err != nil || !bytes.Equal(back, data) {
							t.Errorf("%s %s %s %s: set and remove: %v\n%q\n%q", path, vname, o.ID, name, err, data, back)
						}
					}
				}
				for _, c := range o.Containers {
					if _, err := SetImage(data, o.ID, "default", c.Name, "example/new:9.9"); err != nil {
						t.Errorf("%s %s %s %s: image: %v", path, vname, o.ID, c.Name, err)
					}
				}
			}
		}
	}
}

// Smaller shapes, edit by edit.
func TestShapes(t *testing.T) {
	const head = "kind: ConfigMap\n"
	set := map[string]*string{"automated": ptr("true")}
	for _, tc := range []struct{ name, in, want string }{
		{"flow null", "metadata: {name: x, annotations: null}\n", "metadata: {name: x, annotations: {fluxcd.io/automated: \"true\"}}\n"},
		{"flow empty value", "metadata: {name: x, annotations: }\n", "metadata: {name: x, annotations: {fluxcd.io/automated: \"true\"} }\n"},
		{"multi-line flow", "metadata: {\n  name: x,\n  namespace: default\n}\n",
			"metadata: {\n  name: x,\n  namespace: default,\n  annotations: {\n    fluxcd.io/automated: \"true\"\n  }\n}\n"},
		{"tilde at end", "metadata:\n  name: x\n  annotations: ~", "metadata:\n  name: x\n  annotations:\n    fluxcd.io/automated: \"true\""},
		{"empty value key", "metadata:\n  name: x\n  annotations:\n    fluxcd.io/automated:\n    b: c\n",
			"metadata:\n  name: x\n  annotations:\n    fluxcd.io/automated: \"true\"\n    b: c\n"},
		{"after kept block", "metadata:\n  name: x\n  annotations:\n    a: |+\n      x\n\n# c\n",
			"metadata:\n  name: x\n  annotations:\n    a: |+\n      x\n\n    fluxcd.io/automated: \"true\"\n# c\n"},
		{"metadata last, in a List item", "kind: List\nitems:\n- kind: ConfigMap\n  metadata:\n    name: x\n- kind: ConfigMap\n  metadata: {name: y}\n",
			"kind: List\nitems:\n- kind: ConfigMap\n  metadata:\n    name: x\n    annotations:\n      fluxcd.io/automated: \"true\"\n- kind: ConfigMap\n  metadata: {name: y}\n"},
		{"generateName and no name after", "metadata:\n  generateName: x-\n  name: x\n  uid: abc\n",
			"metadata:\n  generateName: x-\n  name: x\n  annotations:\n    fluxcd.io/automated: \"true\"\n  uid: abc\n"},
		{"legacy only", "metadata:\n  name: x\n  annotations:\n    flux.weave.works/locked: \"true\"\n    other.io/x: y\n",
			"metadata:\n  name: x\n  annotations:\n    flux.weave.works/locked: \"true\"\n    other.io/x: y\n    flux.weave.works/automated: \"true\"\n"},
	} {
		in, want := head+tc.in, head+tc.want
		if strings.HasPrefix(tc.in, "kind:") {
			in, want = tc.in, tc.want
		}
		out, err := SetPolicies([]byte(in), mustID(t, "default:configmap/x"), "default", set)
		if err != nil || string(out) != want {
			t.Errorf("%s: %v\n%q\nwant\n%q", tc.name, err, out, want)
		}
	}
}
