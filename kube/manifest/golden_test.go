package manifest

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v3"

	"github.com/fluxd/fluxd/kube/resource"
)

var update = flag.Bool("update", false, "rewrite the golden files testdata/*/out.*")

// goldenCase is testdata/<case>: in.yaml (or in.json), the edit in
// spec.yaml, and the expected out.yaml (or out.json).
type goldenCase struct {
	name   string
	dir    string
	ext    string // ".yaml" or ".json"
	in     []byte
	spec   caseSpec
	outRef []byte
}

// caseSpec is spec.yaml.
type caseSpec struct {
	// ID of the object to edit.
	ID string `yaml:"id"`
	// Namespace is the default namespace ("default" when absent).
	Namespace *string `yaml:"namespace"`
	// Policies to set (null: remove) with SetPolicies...
	Policies map[string]*string `yaml:"policies"`
	// ... or the image to set with SetImage.
	Image *struct {
		Container string `yaml:"container"`
		Image     string `yaml:"image"`
	} `yaml:"image"`
	// Changed is how many lines the edit removes plus how many it adds (a
	// line diff of in and out).
	Changed int `yaml:"changed"`
	// Want is the effect on the decoded object, for the property test.
	Want struct {
		// Annotations that change: a value sets, null removes.
		Annotations map[string]*string `yaml:"annotations"`
		// DropAnnotations: metadata.annotations goes away.
		DropAnnotations bool `yaml:"dropAnnotations"`
	} `yaml:"want"`
}

func (c goldenCase) namespace() string {
	if c.spec.Namespace != nil {
		return *c.spec.Namespace
	}
	return "default"
}

func (c goldenCase) run() ([]byte, error) {
	id, err := resource.ParseID(c.spec.ID)
	if err != nil {
		return nil, err
	}
	if c.spec.Image != nil {
		return SetImage(c.in, id, c.namespace(), c.spec.Image.Container, c.spec.Image.Image)
	}
	return SetPolicies(c.in, id, c.namespace(), c.spec.Policies)
}

func loadGolden(t testing.TB) []goldenCase {
	t.Helper()
	dirs, err := filepath.Glob("testdata/*/spec.yaml")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no golden cases: %v", err)
	}
	var out []goldenCase
	for _, s := range dirs {
		dir := filepath.Dir(s)
		c := goldenCase{name: filepath.Base(dir), dir: dir, ext: ".yaml"}
		if _, err := os.Stat(filepath.Join(dir, "in.json")); err == nil {
			c.ext = ".json"
		}
		if c.in, err = os.ReadFile(filepath.Join(dir, "in"+c.ext)); err != nil {
			t.Fatal(err)
		}
		raw, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(raw, &c.spec); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		c.outRef, _ = os.ReadFile(filepath.Join(dir, "out"+c.ext))
		out = append(out, c)
	}
	return out
}

func TestGolden(t *testing.T) {
	for _, c := range loadGolden(t) {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.run()
			if err != nil {
				t.Fatalf("edit: %v", err)
			}
			outPath := filepath.Join(c.dir, "out"+c.ext)
			if *update {
				if err := os.WriteFile(outPath, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if c.outRef == nil {
				t.Fatalf("%s missing; run go test -update", outPath)
			}
			if !bytes.Equal(got, c.outRef) {
				t.Fatalf("output differs from %s:\n--- got\n%s\n--- want\n%s", outPath, got, c.outRef)
			}
			if n := changedLines(c.in, got); n != c.spec.Changed {
				t.Errorf("the edit changed %d lines, want %d", n, c.spec.Changed)
			}
			if c.spec.Changed == 0 && &got[0] != &c.in[0] {
				t.Errorf("no change, but not the same bytes returned")
			}
			// Doing it again changes nothing.
			again, err := goldenCase{in: got, spec: c.spec}.run()
			if err != nil {
				t.Fatalf("edit again: %v", err)
			}
			if !bytes.Equal(again, got) {
				t.Errorf("the edit is not idempotent:\n%s", again)
			}
		})
	}
}

// TestGoldenDecoded is the property test: out decodes to in with exactly
// the intended change.
func TestGoldenDecoded(t *testing.T) {
	for _, c := range loadGolden(t) {
		t.Run(c.name, func(t *testing.T) {
			if c.outRef == nil {
				t.Fatal("no golden output: write it with go test ./kube/manifest -run Golden -update")
			}
			want := decodeAll(t, c.in)
			got := decodeAll(t, c.outRef)
			id, _ := resource.ParseID(c.spec.ID)
			objs, err := Objects(c.in, c.namespace())
			if err != nil {
				t.Fatal(err)
			}
			var target map[string]any
			for _, o := range objs {
				if o.ID == id {
					target = want[o.Doc].(map[string]any)
					if o.Item >= 0 {
						target = target["items"].([]any)[o.Item].(map[string]any)
					}
				}
			}
			if target == nil {
				t.Fatalf("%s not in the file", id)
			}
			if c.spec.Image != nil {
				setImage(t, target, c.spec.Image.Container, c.spec.Image.Image)
			} else {
				meta := target["metadata"].(map[string]any)
				anns, _ := meta["annotations"].(map[string]any)
				if anns == nil && len(c.spec.Want.Annotations) > 0 {
					anns = map[string]any{}
					meta["annotations"] = anns
				}
				for k, v := range c.spec.Want.Annotations {
					if v == nil {
						delete(anns, k)
					} else {
						anns[k] = *v
					}
				}
				if c.spec.Want.DropAnnotations {
					if len(anns) != 0 {
						t.Fatalf("spec: dropAnnotations with annotations left: %v", anns)
					}
					delete(meta, "annotations")
				}
			}
			if !reflect.DeepEqual(want, got) {
				t.Errorf("out decodes to\n%v\nwant\n%v", got, want)
			}
		})
	}
}

func setImage(t *testing.T, obj map[string]any, container, image string) {
	spec := obj
	for _, k := range resource.PodSpecPath(strings.ToLower(obj["kind"].(string))) {
		spec = spec[k].(map[string]any)
	}
	for _, list := range []string{"initContainers", "containers"} {
		cs, _ := spec[list].([]any)
		for _, c := range cs {
			if c := c.(map[string]any); c["name"] == container {
				c["image"] = image
				return
			}
		}
	}
	t.Fatalf("no container %s", container)
}

func decodeAll(t testing.TB, data []byte) []any {
	t.Helper()
	var out []any
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var v any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("decode: %v\n%s", err, data)
		}
		out = append(out, v)
	}
}

// changedLines is the number of lines removed plus added in a line diff of
// a and b (a longest common subsequence).
func changedLines(a, b []byte) int {
	x := strings.SplitAfter(string(a), "\n")
	y := strings.SplitAfter(string(b), "\n")
	if x[len(x)-1] == "" {
		x = x[:len(x)-1]
	}
	if y[len(y)-1] == "" {
		y = y[:len(y)-1]
	}
	// Strip the common head and tail, then LCS on the middle.
	for len(x) > 0 && len(y) > 0 && x[0] == y[0] {
		x, y = x[1:], y[1:]
	}
	for len(x) > 0 && len(y) > 0 && x[len(x)-1] == y[len(y)-1] {
		x, y = x[:len(x)-1], y[:len(y)-1]
	}
	prev := make([]int, len(y)+1)
	cur := make([]int, len(y)+1)
	for i := range x {
		for j := range y {
			if x[i] == y[j] {
				cur[j+1] = prev[j] + 1
			} else {
				cur[j+1] = max(cur[j], prev[j+1])
			}
		}
		prev, cur = cur, prev
	}
	return len(x) + len(y) - 2*prev[len(y)]
}

func TestChangedLines(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		n    int
	}{
		{"a\nb\nc\n", "a\nb\nc\n", 0},
		{"a\nb\nc\n", "a\nx\nb\nc\n", 1},
		{"a\nb\nc\n", "a\nc\n", 1},
		{"a\nb\nc\n", "a\nB\nc\n", 2},
		{"a\nb", "a\nb\n", 2},
	} {
		if n := changedLines([]byte(tc.a), []byte(tc.b)); n != tc.n {
			t.Errorf("%q -> %q: %d, want %d", tc.a, tc.b, n, tc.n)
		}
	}
}
