package kube

import (
	"fmt"
	"strings"
	"testing"

	"github.com/fluxd/fluxd/kube/resource"
)

func ids(objs []Object) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o.ID().String()+"@"+o.Source)
	}
	return out
}

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		files   []resource.File
		want    []string // ID@source
		wantErr []string // substrings, one per FileError, in order: "path|object|message"
	}{
		{
			name: "multi-document YAML with empty and comment-only documents",
			files: []resource.File{{Path: "a.yaml", Data: []byte(`---
# leading comment
apiVersion: v1
kind: Namespace
metadata:
  name: demo
---
---
# only a comment
---

---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: podinfo
  namespace: demo
spec:
  replicas: 2
`)}},
			want: []string{"<cluster>:namespace/demo@a.yaml", "demo:deployment/podinfo@a.yaml"},
		},
		{
			name: "v1 List and a typed List",
			files: []resource.File{{Path: "list.yaml", Data: []byte(`apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: one, namespace: demo}
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: two, namespace: demo}
---
apiVersion: v1
kind: ServiceList
items:
- apiVersion: v1
  kind: Service
  metadata: {name: svc, namespace: demo}
---
apiVersion: v1
kind: List
`)}},
			want: []string{"demo:configmap/one@list.yaml", "demo:configmap/two@list.yaml", "demo:service/svc@list.yaml"},
		},
		{
			name: "JSON object and JSON stream",
			files: []resource.File{
				{Path: "one.json", Data: []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"j1","namespace":"demo"},"data":{"n":"1"}}`)},
				{Path: "two.json", Data: []byte("\n{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"j2\"}}\n{\"apiVersion\":\"v1\",\"kind\":\"List\",\"items\":[{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{\"name\":\"s\",\"namespace\":\"demo\"}}]}\n")},
			},
			want: []string{"demo:configmap/j1@one.json", "<cluster>:configmap/j2@two.json", "demo:secret/s@two.json"},
		},
		{
			name: "malformed YAML names the file line and keeps the other documents",
			files: []resource.File{{Path: "bad.yaml", Data: []byte(`apiVersion: v1
kind: ConfigMap
metadata:
  name: good
  namespace: demo
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: broken
   namespace: demo
---
apiVersion: v1
kind: ConfigMap
metadata: {name: after, namespace: demo}
`)}},
			want:    []string{"demo:configmap/good@bad.yaml", "demo:configmap/after@bad.yaml"},
			wantErr: []string{"bad.yaml||document 2 (line 7): yaml: line 11: mapping values are not allowed"},
		},
		{
			name: "missing apiVersion, kind, name",
			files: []resource.File{{Path: "m.yaml", Data: []byte(`kind: ConfigMap
metadata: {name: noversion}
---
apiVersion: v1
metadata: {name: nokind, namespace: demo}
---
apiVersion: apps/v1
kind: Deployment
metadata: {namespace: demo, generateName: x-}
---
just a string
---
- a
- list
`)}},
			wantErr: []string{
				"m.yaml|<cluster>:configmap/noversion|document 1 (line 1): missing apiVersion",
				"m.yaml|demo:<no kind>/nokind|document 2 (line 4): missing kind",
				"m.yaml|demo:deployment/<no name>|document 3 (line 7): missing metadata.name (generateName cannot be applied)",
				"m.yaml||document 4 (line 11): not a Kubernetes object",
				"m.yaml||document 5 (line 13): not a Kubernetes object (want a mapping with apiVersion, kind and metadata), got a list",
			},
		},
		{
			name:    "a name YAML reads as a boolean",
			files:   []resource.File{{Path: "y.yaml", Data: []byte("---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: y\n")}},
			wantErr: []string{"y.yaml|<cluster>:configmap/<no name>|document 1 (line 2): metadata.name is not a string (true); quote it"},
		},
		{
			name: "bad item in a List",
			files: []resource.File{{Path: "l.yaml", Data: []byte(`apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: ok, namespace: demo}
- apiVersion: v1
  kind: ConfigMap
`)}},
			want:    []string{"demo:configmap/ok@l.yaml"},
			wantErr: []string{"l.yaml|<cluster>:configmap/<no name>|document 1 (line 1), List item 2: missing metadata.name"},
		},
		{
			name:    "invalid JSON gives the line",
			files:   []resource.File{{Path: "bad.json", Data: []byte("{\"apiVersion\": \"v1\",\n \"kind\": \"ConfigMap\",\n \"metadata\": {\"name\": \"x\",}\n}")}},
			wantErr: []string{"bad.json||document 1: line 3: invalid JSON"},
		},
		{
			name: "duplicates across files drop both and name both files",
			files: []resource.File{
				{Path: "a.yaml", Data: []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: dup, namespace: demo}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: single, namespace: demo}\n")},
				{Path: "b.yaml", Data: []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: dup, namespace: demo}\n")},
			},
			want:    []string{"demo:configmap/single@a.yaml"},
			wantErr: []string{"b.yaml|demo:configmap/dup|duplicate definition of demo:configmap/dup (also in a.yaml)"},
		},
		{
			name: "duplicates in one file",
			files: []resource.File{
				{Path: "a.yaml", Data: []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: dup}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: dup}\n")},
			},
			wantErr: []string{"a.yaml|<cluster>:configmap/dup|duplicate definition of <cluster>:configmap/dup (also in the same file)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, errs := Parse(tt.files)
			if got := ids(objs); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("objects = %v, want %v", got, tt.want)
			}
			if len(errs) != len(tt.wantErr) {
				t.Fatalf("errors = %+v, want %d: %v", errs, len(tt.wantErr), tt.wantErr)
			}
			for i, e := range errs {
				got := e.Path + "|" + e.Object + "|" + e.Error
				if !strings.HasPrefix(got, tt.wantErr[i]) {
					t.Errorf("error %d = %q, want prefix %q", i, got, tt.wantErr[i])
				}
			}
		})
	}
}

func TestParseKeepsIntegers(t *testing.T) {
	objs, errs := Parse([]resource.File{{Path: "d.yaml", Data: []byte("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: {replicas: 3}\n")}})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if v := objs[0].Obj.Object["spec"].(map[string]interface{})["replicas"]; v != int64(3) {
		t.Errorf("replicas = %#v, want int64(3)", v)
	}
}

func TestIgnoreOf(t *testing.T) {
	tests := []struct {
		ann  map[string]string
		want Ignore
	}{
		{nil, IgnoreNone},
		{map[string]string{IgnoreAnnotation: "true"}, IgnoreAlways},
		{map[string]string{IgnoreAnnotation: "sync_only"}, IgnoreSyncOnly},
		{map[string]string{IgnoreAnnotation: "false"}, IgnoreNone},
		{map[string]string{LegacyIgnoreAnnotation: "true"}, IgnoreAlways},
		{map[string]string{LegacyIgnoreAnnotation: "sync_only"}, IgnoreSyncOnly},
		{map[string]string{LegacyIgnoreAnnotation: "true", IgnoreAnnotation: "false"}, IgnoreNone},
	}
	for _, tt := range tests {
		if got := IgnoreOf(tt.ann); got != tt.want {
			t.Errorf("IgnoreOf(%v) = %v, want %v", tt.ann, got, tt.want)
		}
	}
	objs, _ := Parse([]resource.File{{Path: "i.yaml", Data: []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: i\n  annotations:\n    fluxcd.io/ignore: sync_only\n")}})
	if objs[0].Ignore() != IgnoreSyncOnly {
		t.Errorf("Object.Ignore() = %v, want sync_only", objs[0].Ignore())
	}
}

func TestGCMark(t *testing.T) {
	m := GCMark("prod", "ssh://git@example.com/repo", "main", []string{"b", "a/", "./a"})
	if err := validMark(m); err != nil {
		t.Fatal(err)
	}
	if len(m) > 63 {
		t.Errorf("mark %q is longer than 63", m)
	}
	if m2 := GCMark("prod", "ssh://git@example.com/repo", "main", []string{"a", "b"}); m2 != m {
		t.Errorf("marks differ for the same paths in another order: %s %s", m, m2)
	}
	for _, other := range []string{
		GCMark("staging", "ssh://git@example.com/repo", "main", []string{"a", "b"}),
		GCMark("prod", "ssh://git@example.com/other", "main", []string{"a", "b"}),
		GCMark("prod", "ssh://git@example.com/repo", "dev", []string{"a", "b"}),
		GCMark("prod", "ssh://git@example.com/repo", "main", []string{"a"}),
	} {
		if other == m {
			t.Errorf("mark %s did not change with its inputs", m)
		}
	}
	if GCMark("c", "u", "b", nil) != GCMark("c", "u", "b", []string{"."}) {
		t.Error("no paths should mean the repository root")
	}
}

func TestPrepare(t *testing.T) {
	objs, _ := Parse([]resource.File{{Path: "p.yaml", Data: []byte(`apiVersion: v1
kind: ConfigMap
metadata:
  name: p
  namespace: demo
  resourceVersion: "42"
  uid: 0000-1111
  labels: {app: p}
  annotations:
    fluxd.io/sync-checksum: stale
data: {k: v}
`)}})
	o := objs[0].Obj
	u, sum, err := prepare(o, "sha256.abc", "fluxd")
	if err != nil {
		t.Fatal(err)
	}
	if got := u.GetLabels(); got[GCMarkLabel] != "sha256.abc" || got["app"] != "p" {
		t.Errorf("labels = %v", got)
	}
	if got := u.GetAnnotations()[ChecksumAnnotation]; got != sum || !strings.HasPrefix(sum, "sha256:") {
		t.Errorf("checksum annotation = %q, returned %q", got, sum)
	}
	if u.GetResourceVersion() != "" || u.GetUID() != "" {
		t.Errorf("resourceVersion %q, uid %q kept", u.GetResourceVersion(), u.GetUID())
	}
	if o.GetLabels()[GCMarkLabel] != "" {
		t.Error("prepare changed the parsed object")
	}
	// The checksum depends on content, mark and field manager, not on a
	// stale checksum annotation in the manifest.
	_, again, _ := prepare(u, "sha256.abc", "fluxd")
	if again != sum {
		t.Errorf("checksum of the prepared object %s != %s", again, sum)
	}
	if _, s, _ := prepare(o, "sha256.other", "fluxd"); s == sum {
		t.Error("checksum ignores the mark")
	}
	if _, s, _ := prepare(o, "sha256.abc", "other"); s == sum {
		t.Error("checksum ignores the field manager")
	}
	changed := o.DeepCopy()
	changed.Object["data"] = map[string]interface{}{"k": "w"}
	if _, s, _ := prepare(changed, "sha256.abc", "fluxd"); s == sum {
		t.Error("checksum ignores the data")
	}
}

func BenchmarkParse1000(b *testing.B) {
	files := benchFiles(1000)
	b.ResetTimer()
	for b.Loop() {
		if _, errs := Parse(files); len(errs) > 0 {
			b.Fatal(errs)
		}
	}
}

// benchFiles makes n small Deployments, ten to a file.
func benchFiles(n int) []resource.File {
	var files []resource.File
	var sb strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&sb, `---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-%d
  namespace: ns-%d
  labels: {app: app-%d}
spec:
  replicas: 1
  selector:
    matchLabels: {app: app-%d}
  template:
    metadata:
      labels: {app: app-%d}
    spec:
      containers:
      - name: main
        image: registry.example.com/app:1.0.%d
        ports:
        - containerPort: 8080
        resources:
          requests: {cpu: 10m, memory: 16Mi}
`, i, i%20, i, i, i, i)
		if i%10 == 9 {
			files = append(files, resource.File{Path: fmt.Sprintf("apps/f%d.yaml", i/10), Data: []byte(sb.String())})
			sb.Reset()
		}
	}
	return files
}

func TestParseCache(t *testing.T) {
	var pc parseCache
	a := resource.File{Path: "a.yaml", Data: []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")}
	b := resource.File{Path: "b.yaml", Data: []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n")}
	first, _ := pc.parse([]resource.File{a, b})
	again, _ := pc.parse([]resource.File{a, b})
	if first[0].Obj != again[0].Obj || first[1].Obj != again[1].Obj {
		t.Error("unchanged files were parsed again")
	}
	b.Data = []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b2}\n")
	changed, _ := pc.parse([]resource.File{a, b})
	if changed[0].Obj != first[0].Obj || changed[1].ID().Name != "b2" {
		t.Errorf("after a change: %v", ids(changed))
	}
	moved, _ := pc.parse([]resource.File{{Path: "c.yaml", Data: a.Data}})
	if moved[0].Source != "c.yaml" {
		t.Errorf("a moved file keeps its old path: %v", ids(moved))
	}
}

func TestParseCRLF(t *testing.T) {
	objs, errs := Parse([]resource.File{{Path: "w.yaml", Data: []byte("apiVersion: v1\r\nkind: ConfigMap\r\nmetadata:\r\n  name: w\r\n---\r\napiVersion: v1\r\nkind: ConfigMap\r\nmetadata:\r\n  name: w2\r\n")}})
	if len(errs) > 0 || len(objs) != 2 || objs[1].ID().Name != "w2" {
		t.Errorf("objects %v, errors %v", ids(objs), errs)
	}
}
