package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fluxd/fluxd/kube/resource"
)

// wire returns a wire-doc example as fluxd sends it: compact, with <, >
// and & escaped as encoding/json does.
func wire(t *testing.T, example string) string {
	t.Helper()
	var c bytes.Buffer
	if err := json.Compact(&c, []byte(example)); err != nil {
		t.Fatalf("example is not JSON: %v\n%s", err, example)
	}
	var e bytes.Buffer
	json.HTMLEscape(&e, c.Bytes())
	return e.String()
}

func mustMarshal(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal %T: %v", v, err)
	}
	return string(b)
}

// roundTrip decodes example into a new T, encodes it again and checks the
// bytes are the example's.
func roundTrip[T any](t *testing.T, example string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(example), &v); err != nil {
		t.Fatalf("decode %T: %v", v, err)
	}
	if got, want := mustMarshal(t, v), wire(t, example); got != want {
		t.Errorf("%T round trip:\n got %s\nwant %s", v, got, want)
	}
	return v
}

func id(s string) resource.ID {
	i, err := resource.ParseID(s)
	if err != nil {
		panic(err)
	}
	return i
}

func date(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// Examples from FLUX-V1-WIRE.md §2.

const controllerStatusExample = `[{"ID":"shop:deployment/cart","Containers":[{"Name":"cart","Current":{"ID":"ghcr.io/shop/cart:2.3.0","Labels":{}},"LatestFiltered":{"ID":"","Labels":{}}}],
  "ReadOnly":"","Status":"ready","Rollout":{"Desired":3,"Updated":3,"Ready":3,"Available":3,"Outdated":0,"Messages":null},
  "SyncError":"","Antecedent":"","Labels":{"tier":"web"},"Automated":false,"Locked":true,"Ignore":false,
  "Policies":{"locked":"true","locked_user":"Kim <kim@shop.test>","tag.cart":"semver:~2.3"}}]`

func TestControllerStatusGolden(t *testing.T) {
	roundTrip[[]ControllerStatus](t, controllerStatusExample)
	// What a dependency builds.
	built := []ControllerStatus{{
		ID:         id("shop:deployment/cart"),
		Containers: []Container{{Name: "cart", Current: Info{ID: "ghcr.io/shop/cart:2.3.0"}}},
		Status:     StatusReady,
		Rollout:    RolloutStatus{Desired: 3, Updated: 3, Ready: 3, Available: 3},
		Labels:     map[string]string{"tier": "web"},
		Locked:     true,
		Policies:   map[string]string{"locked": "true", "locked_user": "Kim <kim@shop.test>", "tag.cart": "semver:~2.3"},
	}}
	if got, want := mustMarshal(t, built), wire(t, controllerStatusExample); got != want {
		t.Errorf("built:\n got %s\nwant %s", got, want)
	}
	// Nil lists and maps are null, never omitted.
	if got, want := mustMarshal(t, ControllerStatus{}), `{"ID":"","Containers":null,"ReadOnly":"","Status":"","Rollout":{"Desired":0,"Updated":0,"Ready":0,"Available":0,"Outdated":0,"Messages":null},"SyncError":"","Antecedent":"","Labels":null,"Automated":false,"Locked":false,"Ignore":false,"Policies":null}`; got != want {
		t.Errorf("zero:\n got %s\nwant %s", got, want)
	}
}

const imageStatusExample = `[{"ID":"shop:deployment/cart","Containers":[{"Name":"cart",
  "Current":{"ID":"ghcr.io/shop/cart:2.3.0","Digest":"sha256:9f1c","Labels":{},"CreatedAt":"2024-03-01T08:00:00Z"},
  "LatestFiltered":{"ID":"ghcr.io/shop/cart:2.3.1","Labels":{},"CreatedAt":"2024-03-09T08:00:00Z"},
  "Available":[{"ID":"ghcr.io/shop/cart:2.3.1","Labels":{},"CreatedAt":"2024-03-09T08:00:00Z"},
               {"ID":"ghcr.io/shop/cart:2.3.0","Labels":{},"CreatedAt":"2024-03-01T08:00:00Z"}],
  "AvailableImagesCount":2,"NewAvailableImagesCount":1,"FilteredImagesCount":2,"NewFilteredImagesCount":1}]}]`

func TestImageStatusGolden(t *testing.T) {
	got := roundTrip[[]ImageStatus](t, imageStatusExample)
	c := got[0].Containers[0]
	if !c.Current.CreatedAt.Equal(date("2024-03-01T08:00:00Z")) || c.Current.Digest != "sha256:9f1c" {
		t.Errorf("Current decoded as %+v", c.Current)
	}
	// Times are written in UTC whatever their zone.
	local := Info{ID: "a:1", CreatedAt: date("2024-03-01T10:00:00+02:00"), LastFetched: date("2024-03-01T08:00:00.5Z"),
		Labels: ImageLabels{Created: date("2024-03-01T09:00:00+01:00")}}
	if got, want := mustMarshal(t, local), `{"ID":"a:1","Labels":{"org.opencontainers.image.created":"2024-03-01T08:00:00Z"},"CreatedAt":"2024-03-01T08:00:00Z","LastFetched":"2024-03-01T08:00:00.5Z"}`; got != want {
		t.Errorf("times:\n got %s\nwant %s", got, want)
	}
	if got, want := mustMarshal(t, Container{}), `{"Current":{"ID":"","Labels":{}},"LatestFiltered":{"ID":"","Labels":{}}}`; got != want {
		t.Errorf("zero container:\n got %s\nwant %s", got, want)
	}
	if got, want := mustMarshal(t, ImageStatus{ID: id("a:deployment/b")}), `{"ID":"a:deployment/b","Containers":null}`; got != want {
		t.Errorf("no containers:\n got %s\nwant %s", got, want)
	}
}

const (
	imageSpecExample = `{"type":"image","cause":{"Message":"","User":"Kim <kim@shop.test>"},
 "spec":{"ServiceSpecs":["<all>"],"ImageSpec":"<all latest>","Kind":"plan","Excludes":["shop:deployment/legacy"],"Force":false}}`
	containersSpecExample = `{"type":"containers","cause":{"Message":"","User":""},
 "spec":{"Kind":"execute","ContainerSpecs":{"shop:deployment/cart":[{"Container":"cart","Current":"ghcr.io/shop/cart:2.3.0","Target":"ghcr.io/shop/cart:2.4.0"}]},"SkipMismatches":false,"Force":false}}`
	policySpecExample = `{"type":"policy","cause":{"Message":"hotfix freeze","User":"Kim"},
 "spec":{"shop:deployment/cart":{"add":{"locked":"true","locked_user":"Kim","locked_msg":"hotfix freeze","tag.cart":"glob:2.3.*"},"remove":{"automated":"true"}}}}`
	syncSpecExample = `{"type":"sync","cause":{"Message":"","User":""},"spec":{}}`
)

// The policy example's "add" keys are not sorted; encoding/json sorts map
// keys, which fluxctl does not care about.
const policySpecSorted = `{"type":"policy","cause":{"Message":"hotfix freeze","User":"Kim"},
 "spec":{"shop:deployment/cart":{"add":{"locked":"true","locked_msg":"hotfix freeze","locked_user":"Kim","tag.cart":"glob:2.3.*"},"remove":{"automated":"true"}}}}`

func TestSpecGolden(t *testing.T) {
	img := roundTrip[Spec](t, imageSpecExample)
	want := Spec{Type: UpdateImage, Cause: Cause{User: "Kim <kim@shop.test>"}, Spec: ReleaseImageSpec{
		ServiceSpecs: []ResourceSpec{ResourceSpecAll}, ImageSpec: ImageSpecLatest, Kind: ReleaseKindPlan,
		Excludes: []resource.ID{id("shop:deployment/legacy")},
	}}
	if !reflect.DeepEqual(img, want) {
		t.Errorf("image spec decoded as %#v", img)
	}
	if err := img.Validate(); err != nil {
		t.Errorf("image spec: %v", err)
	}

	ctr := roundTrip[Spec](t, containersSpecExample)
	cs := ctr.Spec.(ReleaseContainersSpec)
	if u := cs.ContainerSpecs[id("shop:deployment/cart")]; len(u) != 1 || u[0].Target != "ghcr.io/shop/cart:2.4.0" {
		t.Errorf("containers spec decoded as %#v", cs)
	}
	if err := ctr.Validate(); err != nil {
		t.Errorf("containers spec: %v", err)
	}

	var pol Spec
	if err := json.Unmarshal([]byte(policySpecExample), &pol); err != nil {
		t.Fatal(err)
	}
	if got, want := mustMarshal(t, pol), wire(t, policySpecSorted); got != want {
		t.Errorf("policy spec:\n got %s\nwant %s", got, want)
	}
	pu := pol.Spec.(PolicyUpdates)[id("shop:deployment/cart")]
	if pu.Add["locked_msg"] != "hotfix freeze" || pu.Remove["automated"] != "true" {
		t.Errorf("policy spec decoded as %#v", pu)
	}

	sync := roundTrip[Spec](t, syncSpecExample)
	if _, ok := sync.Spec.(ManualSync); !ok || sync.Validate() != nil {
		t.Errorf("sync spec decoded as %#v", sync)
	}
}

func TestSpecDecodeErrors(t *testing.T) {
	for name, body := range map[string]string{
		"unknown type":         `{"type":"scale","cause":{},"spec":{}}`,
		"no type":              `{"cause":{},"spec":{}}`,
		"no spec":              `{"type":"image","cause":{}}`,
		"spec of wrong shape":  `{"type":"image","spec":[]}`,
		"invalid exclude":      `{"type":"image","spec":{"ServiceSpecs":["<all>"],"ImageSpec":"<all latest>","Kind":"plan","Excludes":["not an id"]}}`,
		"invalid policy ID":    `{"type":"policy","spec":{"nope":{"add":{"locked":"true"}}}}`,
		"policy value number":  `{"type":"policy","spec":{"a:deployment/b":{"add":{"locked":true}}}}`,
		"empty Current":        `{"type":"containers","spec":{"Kind":"execute","ContainerSpecs":{"a:deployment/b":[{"Container":"c","Current":"","Target":"x:1"}]}}}`,
		"malformed Target":     `{"type":"containers","spec":{"Kind":"execute","ContainerSpecs":{"a:deployment/b":[{"Container":"c","Current":"x:1","Target":"x::1"}]}}}`,
		"invalid container ID": `{"type":"containers","spec":{"Kind":"execute","ContainerSpecs":{"b":[]}}}`,
		"not an object":        `"sync"`,
		"truncated":            `{"type":"sync"`,
	} {
		var s Spec
		if err := json.Unmarshal([]byte(body), &s); err == nil {
			t.Errorf("%s: decoded as %#v, want an error", name, s)
		}
	}
}

func TestSpecValidate(t *testing.T) {
	ok := ReleaseImageSpec{ServiceSpecs: []ResourceSpec{"a:deployment/b"}, ImageSpec: "ghcr.io/a/b:1", Kind: ReleaseKindExecute}
	for name, tc := range map[string]struct {
		spec Spec
		want string
	}{
		"auto": {Spec{Type: UpdateAuto, Spec: Automated{}}, `unknown update type "auto"`},
		"no workloads": {Spec{Type: UpdateImage, Spec: ReleaseImageSpec{ImageSpec: ImageSpecLatest, Kind: ReleaseKindPlan}},
			"release names no workloads"},
		"bad workload": {Spec{Type: UpdateImage, Spec: ReleaseImageSpec{ServiceSpecs: []ResourceSpec{"x"}, ImageSpec: ImageSpecLatest, Kind: ReleaseKindPlan}},
			"invalid workload spec"},
		"no tag": {Spec{Type: UpdateImage, Spec: ReleaseImageSpec{ServiceSpecs: []ResourceSpec{ResourceSpecAll}, ImageSpec: "ghcr.io/a/b", Kind: ReleaseKindPlan}},
			"it has no tag"},
		"bad kind": {Spec{Type: UpdateImage, Spec: ReleaseImageSpec{ServiceSpecs: []ResourceSpec{ResourceSpecAll}, ImageSpec: ImageSpecLatest, Kind: "dry"}},
			`invalid release kind "dry"`},
		"containers without kind": {Spec{Type: UpdateContainers, Spec: ReleaseContainersSpec{}}, "invalid release kind"},
		"no containers":           {Spec{Type: UpdateContainers, Spec: ReleaseContainersSpec{Kind: ReleaseKindPlan}}, "names no containers"},
		"mismatch":                {Spec{Type: UpdateSync, Spec: ok}, "does not match"},
		"nil spec":                {Spec{Type: UpdateSync}, `has no "spec"`},
		"ok":                      {Spec{Type: UpdateImage, Spec: ok}, ""},
		"digest":                  {Spec{Type: UpdateImage, Spec: ReleaseImageSpec{ServiceSpecs: []ResourceSpec{ResourceSpecAll}, ImageSpec: ImageSpec("a/b@sha256:" + strings.Repeat("ab", 32)), Kind: ReleaseKindPlan}}, ""},
	} {
		err := tc.spec.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: got %v, want %q", name, err, tc.want)
		}
	}
}

func TestPolicySetForms(t *testing.T) {
	var pu PolicyUpdates
	if err := json.Unmarshal([]byte(`{"a:deployment/b":{"add":["automated","locked"],"remove":null},"a:deployment/c":{}}`), &pu); err != nil {
		t.Fatal(err)
	}
	want := PolicyUpdates{
		id("a:deployment/b"): {Add: PolicySet{"automated": "true", "locked": "true"}},
		id("a:deployment/c"): {},
	}
	if !reflect.DeepEqual(pu, want) {
		t.Errorf("got %#v", pu)
	}
	if got, want := mustMarshal(t, pu), `{"a:deployment/b":{"add":{"automated":"true","locked":"true"},"remove":null},"a:deployment/c":{"add":null,"remove":null}}`; got != want {
		t.Errorf("encoded:\n got %s\nwant %s", got, want)
	}
}

const (
	jobRunningExample   = `{"Result":{},"Err":"","StatusString":"running"}`
	jobSucceededExample = `{"Result":{"revision":"4be1d0c9a7e35f2a8c6b0d1e9f7a3c5b2d4e6f80",
  "spec":{"type":"image","cause":{"Message":"","User":"Kim"},"spec":{"ServiceSpecs":["shop:deployment/cart"],"ImageSpec":"ghcr.io/shop/cart:2.4.0","Kind":"execute","Excludes":null,"Force":false}},
  "result":{"shop:deployment/cart":{"Status":"success","PerContainer":[{"Container":"cart","Current":"ghcr.io/shop/cart:2.3.0","Target":"ghcr.io/shop/cart:2.4.0"}]},
            "shop:deployment/db":{"Status":"ignored","Error":"does not use image(s)","PerContainer":null}}},
 "Err":"","StatusString":"succeeded"}`
	jobFailedExample = `{"Result":{},"Err":"git push: non-fast-forward","StatusString":"failed"}`
)

func TestJobStatusGolden(t *testing.T) {
	if got := roundTrip[JobStatus](t, jobRunningExample); got.StatusString != JobRunning {
		t.Errorf("running: %#v", got)
	}
	roundTrip[JobStatus](t, jobFailedExample)
	roundTrip[JobStatus](t, jobSucceededExample)

	built := JobStatus{StatusString: JobSucceeded, Result: JobResult{
		Revision: "4be1d0c9a7e35f2a8c6b0d1e9f7a3c5b2d4e6f80",
		Spec: &Spec{Type: UpdateImage, Cause: Cause{User: "Kim"}, Spec: ReleaseImageSpec{
			ServiceSpecs: []ResourceSpec{"shop:deployment/cart"}, ImageSpec: "ghcr.io/shop/cart:2.4.0", Kind: ReleaseKindExecute,
		}},
		Result: UpdateResult{
			id("shop:deployment/cart"): {Status: WorkloadSuccess, PerContainer: []ContainerUpdate{{Container: "cart", Current: "ghcr.io/shop/cart:2.3.0", Target: "ghcr.io/shop/cart:2.4.0"}}},
			id("shop:deployment/db"):   {Status: WorkloadIgnored, Error: ReasonDoesNotUse},
		},
	}}
	if got, want := mustMarshal(t, built), wire(t, jobSucceededExample); got != want {
		t.Errorf("built:\n got %s\nwant %s", got, want)
	}
	if got, want := mustMarshal(t, JobStatus{StatusString: JobQueued}), `{"Result":{},"Err":"","StatusString":"queued"}`; got != want {
		t.Errorf("queued: got %s want %s", got, want)
	}
}

const gitConfigExample = `{"remote":{"url":"ssh://git@git.shop.test/ops/cluster.git","branch":"main","path":"clusters/prod,base"},
 "publicSSHKey":{"key":"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI... fluxd\n",
                 "fingerprints":{"md5":{"hash":"MD5:3a:9e:...","randomart":"+--[ED25519 256]--+\n...\n"},
                                 "sha256":{"hash":"SHA256:Qx7...","randomart":"...\n"}}},
 "status":"ready","errors":""}`

func TestGitConfigGolden(t *testing.T) {
	got := roundTrip[GitConfig](t, gitConfigExample)
	if got.Status != RepoReady || got.PublicSSHKey.Fingerprints["md5"].Hash != "MD5:3a:9e:..." {
		t.Errorf("decoded as %#v", got)
	}
	if got, want := mustMarshal(t, GitConfig{}), `{"remote":{"url":"","branch":"","path":""},"publicSSHKey":{"key":"","fingerprints":null},"status":"","errors":""}`; got != want {
		t.Errorf("zero:\n got %s\nwant %s", got, want)
	}
}

func TestChangeGolden(t *testing.T) {
	g := roundTrip[Change](t, `{"Kind":"git","Source":{"URL":"ssh://git@git.shop.test/ops/cluster.git","Branch":"main"}}`)
	if g.Git == nil || g.Git.Branch != "main" || g.Image != nil {
		t.Errorf("git change decoded as %#v", g)
	}
	i := roundTrip[Change](t, `{"Kind":"image","Source":{"Name":{"Domain":"ghcr.io","Image":"shop/cart"}}}`)
	if i.Image == nil || i.Image.Name != (ImageName{Domain: "ghcr.io", Image: "shop/cart"}) {
		t.Errorf("image change decoded as %#v", i)
	}
	for _, bad := range []string{
		`{"Kind":"helm","Source":{}}`,
		`{"Kind":"","Source":{}}`,
		`{"Kind":"git"}`,
		`{"Kind":"image","Source":{"Name":"ghcr.io/shop/cart"}}`,
		`{"Kind":"git","Source":"main"}`,
		`[]`,
	} {
		var c Change
		if err := json.Unmarshal([]byte(bad), &c); err == nil {
			t.Errorf("%s decoded as %#v, want an error", bad, c)
		}
	}
}

func TestErrorEnvelopeGolden(t *testing.T) {
	const example = `{"type":"missing","help":"Job not found\n\nThe job may have made no commit ...\n","error":"unknown job \"6e0c41aa-...\""}`
	var e Error
	if err := json.Unmarshal([]byte(example), &e); err != nil {
		t.Fatal(err)
	}
	if e.Type != TypeMissing || e.Err == nil || e.Err.Error() != `unknown job "6e0c41aa-..."` {
		t.Errorf("decoded as %#v", e)
	}
	if got := mustMarshal(t, &e); got != wire(t, example) {
		t.Errorf("round trip:\n got %s\nwant %s", got, example)
	}
	// Not an envelope: fluxctl checks for a non-empty "error".
	var other Error
	if err := json.Unmarshal([]byte(`{}`), &other); err != nil || other.Err != nil {
		t.Errorf("{} decoded as %#v, %v", other, err)
	}

	err := fmtWrap(UnknownJob("x"))
	var ae *Error
	if !errors.As(err, &ae) || ae.Type != TypeMissing || !strings.HasPrefix(ae.Help, "Job not found") {
		t.Errorf("UnknownJob: %#v", ae)
	}
}

func fmtWrap(err error) error { return errors.Join(errors.New("context"), err) }

func TestImageRefs(t *testing.T) {
	for _, good := range []string{
		"alpine", "alpine:3.5", "library/alpine:3.5", "ghcr.io/shop/cart:2.3.0",
		"localhost:5000/a/b/c:rev-1", "localhost/foo", "registry:5000/x:1",
		"quay.io/org/app@sha256:" + strings.Repeat("0f", 32),
		"quay.io/org/app:1.0@sha256:" + strings.Repeat("0f", 32),
		"docker.io/fluxcd/flux:1.1.0", "Weaveworks/Scope:Latest",
	} {
		if _, err := ParseImageRef(good); err != nil {
			t.Errorf("%q: %v", good, err)
		}
	}
	for _, bad := range []string{
		"", "/a", "a/", "a//b", "a:", ":1", "a:1:2", "a b", "a@sha256:zz", "ghcr.io/:1", "a:-x", "a\n",
	} {
		if _, err := ParseImageRef(bad); !errors.Is(err, ErrInvalidImageRef) {
			t.Errorf("%q: got %v, want ErrInvalidImageRef", bad, err)
		}
	}
	r := ImageRef("localhost:5000/org/app:1.2")
	if r.Tag() != "1.2" || r.Name() != (ImageName{Domain: "localhost:5000", Image: "org/app"}) {
		t.Errorf("%s: tag %q name %#v", r, r.Tag(), r.Name())
	}
}

func TestContainerFields(t *testing.T) {
	if err := CheckContainerFields(ContainerFields); err != nil {
		t.Error(err)
	}
	if err := CheckContainerFields([]string{"Name", "Nope"}); err == nil || err.Error() != "Nope is an invalid field" {
		t.Errorf("got %v", err)
	}
	full := Container{Name: "c", Current: Info{ID: "a:1"}, LatestFiltered: Info{ID: "a:2"}, Available: []Info{{ID: "a:2"}},
		AvailableError: "x", AvailableImagesCount: 1, NewAvailableImagesCount: 2, FilteredImagesCount: 3, NewFilteredImagesCount: 4}
	if got := full.OnlyFields(nil); !reflect.DeepEqual(got, full) {
		t.Errorf("all fields: %#v", got)
	}
	if got := full.OnlyFields(ContainerFields); !reflect.DeepEqual(got, full) {
		t.Errorf("every field named: %#v", got)
	}
	if got, want := mustMarshal(t, full.OnlyFields([]string{"Name", "NewFilteredImagesCount"})), `{"Name":"c","Current":{"ID":"","Labels":{}},"LatestFiltered":{"ID":"","Labels":{}},"NewFilteredImagesCount":4}`; got != want {
		t.Errorf("two fields:\n got %s\nwant %s", got, want)
	}
}

func TestStatusShape(t *testing.T) {
	got := mustMarshal(t, Status{Version: "1", Git: GitStatus{Paths: []string{}}, Sync: SyncSummary{Pending: []string{}}})
	want := `{"version":"1","cluster":"","git":{"url":"","branch":"","paths":[],"readOnly":false,"head":"","error":""},"sync":{"tag":"","applied":"","pending":[],"lastError":"","pendingPush":false}}`
	if got != want {
		t.Errorf("\n got %s\nwant %s", got, want)
	}
}

// RepoImage is fluxd's own key: written last and only when set, so a
// container without it has Flux v1's shape, and Flux v1's decoder skips it.
func TestContainerRepoImage(t *testing.T) {
	c := Container{Name: "web", Current: Info{ID: "nginx:1.27"}, RepoImage: "nginx:1.28"}
	want := `{"Name":"web","Current":{"ID":"nginx:1.27","Labels":{}},"LatestFiltered":{"ID":"","Labels":{}},"RepoImage":"nginx:1.28"}`
	if got := mustMarshal(t, c); got != want {
		t.Errorf("\n got %s\nwant %s", got, want)
	}
	if got := roundTrip[Container](t, want); !reflect.DeepEqual(got, c) {
		t.Errorf("decoded as %#v", got)
	}
	// An image a manifest spells badly does not make the answer undecodable.
	if got := roundTrip[Container](t, `{"Current":{"ID":"","Labels":{}},"LatestFiltered":{"ID":"","Labels":{}},"RepoImage":"${IMAGE}"}`); got.RepoImage != "${IMAGE}" {
		t.Errorf("decoded as %#v", got)
	}
	var v1 struct{ Name string }
	if err := json.Unmarshal([]byte(want), &v1); err != nil || v1.Name != "web" {
		t.Errorf("a decoder that does not know RepoImage: %v, %#v", err, v1)
	}
}

// Info and ImageLabels write by hand exactly what encoding/json writes of
// their wire shapes.
func TestInfoMarshalMatchesEncodingJSON(t *testing.T) {
	at := time.Date(2024, 3, 9, 8, 0, 0, 123, time.FixedZone("x", 3600))
	for _, i := range []Info{
		{},
		{ID: "nginx:1.27"},
		{ID: "ghcr.io/shop/cart:2.3.0", Digest: "sha256:abc", ImageID: "sha256:def", CreatedAt: at, LastFetched: at.Add(time.Hour)},
		{ID: "reg/odd:<tag>&\"q\"\\", Digest: "é\u2028\x01", Labels: ImageLabels{BuildDate: at}},
		{ID: "x", Labels: ImageLabels{BuildDate: at, Created: at.Add(time.Minute)}, LastFetched: at},
	} {
		got, err := json.Marshal(i)
		if err != nil {
			t.Fatal(err)
		}
		want, err := json.Marshal(infoJSON{
			ID: string(i.ID), Digest: i.Digest, ImageID: i.ImageID,
			CreatedAt: formatTime(i.CreatedAt), LastFetched: formatTime(i.LastFetched),
		})
		if err != nil {
			t.Fatal(err)
		}
		labels, err := json.Marshal(labelsJSON{BuildDate: formatTime(i.Labels.BuildDate), Created: formatTime(i.Labels.Created)})
		if err != nil {
			t.Fatal(err)
		}
		// infoJSON's Labels would marshal through ImageLabels itself:
		// splice the reference labels in.
		want = bytes.Replace(want, []byte(`"Labels":{}`), append([]byte(`"Labels":`), labels...), 1)
		if !bytes.Equal(got, want) {
			t.Errorf("Info %+v:\n got %s\nwant %s", i, got, want)
		}
		var back Info
		if err := json.Unmarshal(got, &back); err != nil || back.ID != i.ID || back.Digest != i.Digest || !back.CreatedAt.Equal(i.CreatedAt) {
			t.Errorf("round trip of %s: %+v, %v", got, back, err)
		}
	}
}
