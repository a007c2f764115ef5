package kube

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Ignore is an object's ignore policy, from IgnoreAnnotation.
type Ignore int

const (
	// IgnoreNone: the object is applied and, once it leaves git, pruned.
	IgnoreNone Ignore = iota
	// IgnoreAlways ("true"): the object is never applied nor pruned.
	IgnoreAlways
	// IgnoreSyncOnly ("sync_only"): the object is applied, never pruned.
	IgnoreSyncOnly
)

func (i Ignore) String() string {
	switch i {
	case IgnoreAlways:
		return "true"
	case IgnoreSyncOnly:
		return "sync_only"
	}
	return ""
}

// IgnoreOf reads the ignore policy from an object's annotations.
// IgnoreAnnotation wins over LegacyIgnoreAnnotation when both are set;
// values other than "true" and "sync_only" mean IgnoreNone.
func IgnoreOf(annotations map[string]string) Ignore {
	v, ok := annotations[IgnoreAnnotation]
	if !ok {
		v = annotations[LegacyIgnoreAnnotation]
	}
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true":
		return IgnoreAlways
	case "sync_only":
		return IgnoreSyncOnly
	}
	return IgnoreNone
}

// GCMark returns the value of GCMarkLabel for one sync set: the first 160
// bits of sha256("<cluster>|<repo url>|<branch>|<sorted paths>") in hex,
// prefixed "sha256.", a valid label value of 47 characters. Paths are
// cleaned, sorted and de-duplicated; no paths means the repository root.
//
// Changing any input changes the mark: objects applied under the old mark
// are then no longer pruned by this sync set (the safe direction) and are
// re-labelled with the new mark the next time they are applied.
func GCMark(cluster, repoURL, branch string, paths []string) string {
	ps := make([]string, 0, len(paths))
	seen := map[string]bool{}
	for _, p := range paths {
		p = path.Clean("/" + strings.TrimSpace(p))[1:]
		if p == "" {
			p = "."
		}
		if !seen[p] {
			seen[p] = true
			ps = append(ps, p)
		}
	}
	if len(ps) == 0 {
		ps = []string{"."}
	}
	sort.Strings(ps)
	sum := sha256.Sum256([]byte(cluster + "|" + repoURL + "|" + branch + "|" + strings.Join(ps, ",")))
	return "sha256." + hex.EncodeToString(sum[:20])
}

// validMark reports why mark cannot be a GCMarkLabel value, if it cannot.
func validMark(mark string) error {
	if mark == "" {
		return fmt.Errorf("no GC mark: SyncOptions.GCMark is required (see kube.GCMark)")
	}
	if errs := validation.IsValidLabelValue(mark); len(errs) > 0 {
		return fmt.Errorf("GC mark %q is not a valid label value: %s", mark, strings.Join(errs, "; "))
	}
	return nil
}

// prepare returns the object to apply for o: a copy without the metadata
// fields that must not be sent with server-side apply (managedFields is
// refused; resourceVersion would make the apply conditional; uid would pin it
// to one incarnation of the object), with GCMarkLabel set to mark and
// ChecksumAnnotation set to the object's checksum, which it also returns.
func prepare(o *unstructured.Unstructured, mark, fieldManager string) (*unstructured.Unstructured, string, error) {
	u := o.DeepCopy()
	u.SetManagedFields(nil)
	u.SetResourceVersion("")
	u.SetUID("")
	labels := u.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	labels[GCMarkLabel] = mark
	u.SetLabels(labels)
	ann := u.GetAnnotations()
	delete(ann, ChecksumAnnotation)
	if len(ann) == 0 {
		ann = nil
	}
	u.SetAnnotations(ann)
	sum, err := checksum(u.Object, fieldManager)
	if err != nil {
		return nil, "", err
	}
	if ann == nil {
		ann = map[string]string{}
	}
	ann[ChecksumAnnotation] = sum
	u.SetAnnotations(ann)
	return u, sum, nil
}

// checksum hashes an object (encoding/json sorts map keys, so equal objects
// hash equally) together with the field manager that applies it.
func checksum(obj map[string]interface{}, fieldManager string) (string, error) {
	b, err := json.Marshal(obj)
	if err != nil {
		return "", fmt.Errorf("encode object: %w", err)
	}
	h := sha256.New()
	h.Write([]byte(fieldManager))
	h.Write([]byte{0})
	h.Write(b)
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}
