package manifest

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"unicode/utf8"
)

var fuzzPolicies = []string{"automated", "locked", "locked_msg", "locked_user", "ignore", "tag.app", "tag.main", "tag.podinfod"}

// FuzzSetPolicies edits random files (seeded with the golden inputs) and
// checks that an edit, when made, gives a file that parses, in which every
// other document and every other object decodes as before, and the object
// has the policy asked for. Refusing an edit (ErrUnsupported) is allowed.
func FuzzSetPolicies(f *testing.F) {
	inputs, _ := filepath.Glob("testdata/*/in.*")
	for i, path := range inputs {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, uint8(i), "true", i%3 == 0)
		f.Add(data, uint8(i*7), "it's: \"x\"\n#y", false)
	}
	f.Add([]byte(objectsFile), uint8(9), "glob:*", false)
	f.Fuzz(func(t *testing.T, data []byte, which uint8, value string, remove bool) {
		objs, err := Objects(data, "default")
		if err != nil || len(objs) == 0 {
			return
		}
		o := objs[int(which)%len(objs)]
		name := fuzzPolicies[int(which/16)%len(fuzzPolicies)]
		var v *string
		if !remove {
			v = &value
		}
		out, err := SetPolicies(data, o.ID, "default", map[string]*string{name: v})
		if err != nil {
			switch {
			case errors.Is(err, ErrUnsupported), errors.Is(err, ErrDuplicate):
			case v != nil && !utf8.ValidString(*v):
			default:
				t.Fatalf("SetPolicies(%s, %s=%v): %v", o.ID, name, v, err)
			}
			return
		}
		before, err := parseFile(data)
		if err != nil {
			t.Fatal(err)
		}
		after, err := parseFile(out)
		if err != nil {
			t.Fatalf("the output does not parse: %v\n%s", err, out)
		}
		if len(after.docs) != len(before.docs) {
			t.Fatalf("%d documents, was %d", len(after.docs), len(before.docs))
		}
		for i := range before.docs {
			if i != o.Doc && canonical(before.docs[i]) != canonical(after.docs[i]) {
				t.Fatalf("document %d changed:\n%s", i, out)
			}
		}
		objs2, err := Objects(out, "default")
		if err != nil || len(objs2) != len(objs) {
			t.Fatalf("objects after: %d, %v", len(objs2), err)
		}
		for i, o2 := range objs2 {
			if o2.ID != objs[i].ID {
				t.Fatalf("object %d is %s, was %s", i, o2.ID, objs[i].ID)
			}
			if o2.ID != o.ID {
				if !reflect.DeepEqual(o2.Annotations, objs[i].Annotations) || !reflect.DeepEqual(o2.Containers, objs[i].Containers) {
					t.Fatalf("%s changed", o2.ID)
				}
				continue
			}
			got, ok := o2.Policies()[name]
			if (v == nil && ok) || (v != nil && got != *v) {
				t.Fatalf("%s: %s = %q (%v), want %v\n%s", o.ID, name, got, ok, v, out)
			}
		}
		if v == nil && bytes.Equal(out, data) {
			return
		}
		again, err := SetPolicies(out, o.ID, "default", map[string]*string{name: v})
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("not idempotent: %v\n%s\n---\n%s", err, out, again)
		}
	})
}
