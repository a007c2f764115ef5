package server

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fluxd/fluxd/kube/resource"
	"github.com/fluxd/fluxd/notes"
	"github.com/fluxd/fluxd/server/api"
)

func id(s string) resource.ID {
	i, err := resource.ParseID(s)
	if err != nil {
		panic(err)
	}
	return i
}

// expect checks the status, content type and exact body of an answer.
func expect(t *testing.T, w interface {
	Result() *http.Response
}, code int, contentType, body string) {
	t.Helper()
	res := w.Result()
	b := new(strings.Builder)
	_, _ = fmt.Fprint(b, readAll(res))
	if res.StatusCode != code {
		t.Errorf("status %d, want %d (body %s)", res.StatusCode, code, b)
	}
	if got := res.Header.Get("Content-Type"); got != contentType {
		t.Errorf("content type %q, want %q", got, contentType)
	}
	if b.String() != body {
		t.Errorf("body\n got %s\nwant %s", b, body)
	}
}

func readAll(res *http.Response) string {
	var sb strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := res.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			return sb.String()
		}
	}
}

// envelope decodes an error envelope and checks its type and message.
func envelope(t *testing.T, w interface {
	Result() *http.Response
}, code int, typ api.ErrorType, msg string) api.Error {
	t.Helper()
	res := w.Result()
	body := readAll(res)
	if res.StatusCode != code {
		t.Errorf("status %d, want %d (body %s)", res.StatusCode, code, body)
	}
	if ct := res.Header.Get("Content-Type"); ct != jsonContentType {
		t.Errorf("content type %q, want %q", ct, jsonContentType)
	}
	var e api.Error
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("not an envelope: %v: %s", err, body)
	}
	if e.Type != typ || e.Err == nil || !strings.Contains(e.Err.Error(), msg) || e.Help == "" {
		t.Errorf("envelope %s, want type %q, an error containing %q, and help", body, typ, msg)
	}
	return e
}

// badReq checks a 400: JSON, but not an envelope (no "error").
func badReq(t *testing.T, w interface {
	Result() *http.Response
}, msg string) {
	t.Helper()
	res := w.Result()
	body := readAll(res)
	if res.StatusCode != http.StatusBadRequest {
		t.Errorf("status %d, want 400 (body %s)", res.StatusCode, body)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("400 body is not JSON: %s", body)
	}
	if _, ok := m["error"]; ok {
		t.Errorf("400 body is an envelope: %s", body)
	}
	if s, _ := m["message"].(string); !strings.Contains(s, msg) {
		t.Errorf("400 message %q, want it to contain %q", s, msg)
	}
}

func TestPingVersion(t *testing.T) {
	s := newServer(t, allDeps(&fake{}))
	expect(t, s.do(t, get("/api/flux/v11/ping")), 204, "", "")
	expect(t, s.do(t, get("/api/flux/v11/version")), 200, jsonContentType, `"1.2.3"`)
}

func TestNotify(t *testing.T) {
	f := &fake{}
	s := newServer(t, allDeps(f))
	expect(t, s.do(t, post("/api/flux/v11/notify", `{"Kind":"git","Source":{"URL":"ssh://git@git.shop.test/ops/cluster.git","Branch":"main"}}`)), 202, "", "")
	if f.change.Kind != api.GitChange || f.change.Git.Branch != "main" {
		t.Errorf("notified %#v", f.change)
	}
	expect(t, s.do(t, post("/api/flux/v11/notify", `{"Kind":"image","Source":{"Name":{"Domain":"ghcr.io","Image":"shop/cart"}}}`)), 202, "", "")
	if f.change.Kind != api.ImageChange || f.change.Image.Name.Image != "shop/cart" {
		t.Errorf("notified %#v", f.change)
	}
	for _, body := range []string{``, `{`, `{"Kind":"helm","Source":{}}`, `{"Kind":"image","Source":{"Name":"ghcr.io/shop/cart"}}`, `{"Kind":"git"}`} {
		badReq(t, s.do(t, post("/api/flux/v11/notify", body)), "decoding the request body")
	}
}

const servicesJSON = `[{"ID":"shop:deployment/cart","Containers":[{"Name":"cart","Current":{"ID":"ghcr.io/shop/cart:2.3.0","Labels":{}},"LatestFiltered":{"ID":"","Labels":{}}}],"ReadOnly":"","Status":"ready","Rollout":{"Desired":3,"Updated":3,"Ready":3,"Available":3,"Outdated":0,"Messages":null},"SyncError":"","Antecedent":"","Labels":{"tier":"web"},"Automated":false,"Locked":true,"Ignore":false,"Policies":{"locked":"true","locked_user":"Kim \u003ckim@shop.test\u003e","tag.cart":"semver:~2.3"}}]`

func workloads() []api.ControllerStatus {
	return []api.ControllerStatus{{
		ID:         id("shop:deployment/cart"),
		Containers: []api.Container{{Name: "cart", Current: api.Info{ID: "ghcr.io/shop/cart:2.3.0"}}},
		Status:     api.StatusReady,
		Rollout:    api.RolloutStatus{Desired: 3, Updated: 3, Ready: 3, Available: 3},
		Labels:     map[string]string{"tier": "web"},
		Locked:     true,
		Policies:   map[string]string{"locked": "true", "locked_user": "Kim <kim@shop.test>", "tag.cart": "semver:~2.3"},
	}}
}

func TestListWorkloads(t *testing.T) {
	f := &fake{workloads: workloads()}
	s := newServer(t, allDeps(f))
	for _, path := range []string{"/api/flux/v6/services?namespace=shop", "/api/flux/v11/services?namespace=shop&services="} {
		expect(t, s.do(t, get(path)), 200, jsonContentType, servicesJSON)
		if f.namespace != "shop" || f.ids != nil {
			t.Errorf("%s: listed namespace %q ids %v", path, f.namespace, f.ids)
		}
	}
	expect(t, s.do(t, get("/api/flux/v11/services?namespace=&services=shop:deployment/cart,shop:Deployment/db")), 200, jsonContentType, servicesJSON)
	if want := []resource.ID{id("shop:deployment/cart"), id("shop:deployment/db")}; f.namespace != "" || !reflect.DeepEqual(f.ids, want) {
		t.Errorf("listed namespace %q ids %v", f.namespace, f.ids)
	}
	// No query at all: every namespace.
	expect(t, s.do(t, get("/api/flux/v6/services")), 200, jsonContentType, servicesJSON)

	f.workloads = []api.ControllerStatus{}
	expect(t, s.do(t, get("/api/flux/v6/services?namespace=")), 200, jsonContentType, `null`)

	badReq(t, s.do(t, get("/api/flux/v11/services?namespace=&services=shop:deployment/cart,nope")), `parsing workload ID "nope"`)
	badReq(t, s.do(t, get("/api/flux/v11/services?services=a:deployment/b,")), `parsing workload ID ""`)
	envelope(t, s.do(t, get("/api/flux/v11/services?namespace=shop&services=shop:deployment/cart")), 422, api.TypeUser,
		"cannot filter by 'namespace' and 'workloads' at the same time")
}

func images() []api.ImageStatus {
	created := time.Date(2024, 3, 1, 8, 0, 0, 0, time.UTC)
	newer := created.AddDate(0, 0, 8)
	return []api.ImageStatus{{ID: id("shop:deployment/cart"), Containers: []api.Container{{
		Name:                    "cart",
		Current:                 api.Info{ID: "ghcr.io/shop/cart:2.3.0", Digest: "sha256:9f1c", CreatedAt: created},
		LatestFiltered:          api.Info{ID: "ghcr.io/shop/cart:2.3.1", CreatedAt: newer},
		Available:               []api.Info{{ID: "ghcr.io/shop/cart:2.3.1", CreatedAt: newer}, {ID: "ghcr.io/shop/cart:2.3.0", CreatedAt: created}},
		AvailableImagesCount:    2,
		NewAvailableImagesCount: 1,
		FilteredImagesCount:     2,
		NewFilteredImagesCount:  1,
	}}}}
}

const imagesJSON = `[{"ID":"shop:deployment/cart","Containers":[{"Name":"cart","Current":{"ID":"ghcr.io/shop/cart:2.3.0","Digest":"sha256:9f1c","Labels":{},"CreatedAt":"2024-03-01T08:00:00Z"},"LatestFiltered":{"ID":"ghcr.io/shop/cart:2.3.1","Labels":{},"CreatedAt":"2024-03-09T08:00:00Z"},"Available":[{"ID":"ghcr.io/shop/cart:2.3.1","Labels":{},"CreatedAt":"2024-03-09T08:00:00Z"},{"ID":"ghcr.io/shop/cart:2.3.0","Labels":{},"CreatedAt":"2024-03-01T08:00:00Z"}],"AvailableImagesCount":2,"NewAvailableImagesCount":1,"FilteredImagesCount":2,"NewFilteredImagesCount":1}]}]`

func TestListImages(t *testing.T) {
	f := &fake{images: images()}
	s := newServer(t, allDeps(f))
	// What fluxctl list-images sends, and list-images -w.
	expect(t, s.do(t, get("/api/flux/v10/images?containerFields=&namespace=shop&service=%3Call%3E")), 200, jsonContentType, imagesJSON)
	if f.namespace != "shop" || f.ids != nil {
		t.Errorf("listed namespace %q ids %v", f.namespace, f.ids)
	}
	expect(t, s.do(t, get("/api/flux/v10/images?containerFields=&namespace=&service=shop%3Adeployment%2Fcart")), 200, jsonContentType, imagesJSON)
	if f.namespace != "" || !reflect.DeepEqual(f.ids, []resource.ID{id("shop:deployment/cart")}) {
		t.Errorf("listed namespace %q ids %v", f.namespace, f.ids)
	}
	// The legacy route, and no service meaning all.
	expect(t, s.do(t, get("/api/flux/v6/images?service=%3Call%3E")), 200, jsonContentType, imagesJSON)
	expect(t, s.do(t, get("/api/flux/v6/images")), 200, jsonContentType, imagesJSON)

	// Only the fields asked for, without changing the dependency's data.
	expect(t, s.do(t, get("/api/flux/v10/images?containerFields=Name,NewFilteredImagesCount")), 200, jsonContentType,
		`[{"ID":"shop:deployment/cart","Containers":[{"Name":"cart","Current":{"ID":"","Labels":{}},"LatestFiltered":{"ID":"","Labels":{}},"NewFilteredImagesCount":1}]}]`)
	if !reflect.DeepEqual(f.images, images()) {
		t.Error("field selection changed the dependency's answer")
	}

	f.images = nil
	expect(t, s.do(t, get("/api/flux/v10/images")), 200, jsonContentType, `null`)

	badReq(t, s.do(t, get("/api/flux/v10/images?service=cart")), `parsing service spec "cart"`)
	envelope(t, s.do(t, get("/api/flux/v10/images?namespace=shop&service=shop:deployment/cart")), 422, api.TypeUser,
		"cannot filter by 'namespace' and 'workload' at the same time")
	e := envelope(t, s.do(t, get("/api/flux/v10/images?containerFields=Name,Tags")), 422, api.TypeUser, "Tags is an invalid field")
	if e.Err.Error() != "Tags is an invalid field" {
		t.Errorf("error %q", e.Err)
	}
}

func TestImagesNotWired(t *testing.T) {
	deps := allDeps(&fake{})
	deps.Images = nil
	s := newServer(t, deps)
	e := envelope(t, s.do(t, get("/api/flux/v10/images?containerFields=&namespace=&service=%3Call%3E")), 501, api.TypeServer, "list images: not available in this fluxd yet")
	if !strings.Contains(e.Help, "cannot list images yet") {
		t.Errorf("help %q", e.Help)
	}
}

func TestUpdateManifests(t *testing.T) {
	f := &fake{jobID: "6e0c41aa-0b1c-4e0d-9a4f-1c2d3e4f5a6b"}
	s := newServer(t, allDeps(f))
	for name, tc := range map[string]struct {
		body string
		want api.Spec
	}{
		"image": {`{"type":"image","cause":{"Message":"","User":"Kim \u003ckim@shop.test\u003e"},"spec":{"ServiceSpecs":["\u003call\u003e"],"ImageSpec":"\u003call latest\u003e","Kind":"plan","Excludes":["shop:deployment/legacy"],"Force":false}}`,
			api.Spec{Type: "image", Cause: api.Cause{User: "Kim <kim@shop.test>"}, Spec: api.ReleaseImageSpec{
				ServiceSpecs: []api.ResourceSpec{api.ResourceSpecAll}, ImageSpec: api.ImageSpecLatest, Kind: api.ReleaseKindPlan,
				Excludes: []resource.ID{id("shop:deployment/legacy")}}}},
		"containers": {`{"type":"containers","cause":{"Message":"","User":""},"spec":{"Kind":"execute","ContainerSpecs":{"shop:deployment/cart":[{"Container":"cart","Current":"ghcr.io/shop/cart:2.3.0","Target":"ghcr.io/shop/cart:2.4.0"}]},"SkipMismatches":false,"Force":false}}`,
			api.Spec{Type: "containers", Spec: api.ReleaseContainersSpec{Kind: api.ReleaseKindExecute, ContainerSpecs: map[resource.ID][]api.ContainerUpdate{
				id("shop:deployment/cart"): {{Container: "cart", Current: "ghcr.io/shop/cart:2.3.0", Target: "ghcr.io/shop/cart:2.4.0"}}}}}},
		"policy": {`{"type":"policy","cause":{"Message":"hotfix freeze","User":"Kim"},"spec":{"shop:deployment/cart":{"add":{"locked":"true","locked_user":"Kim","locked_msg":"hotfix freeze","tag.cart":"glob:2.3.*"},"remove":{"automated":"true"}}}}`,
			api.Spec{Type: "policy", Cause: api.Cause{Message: "hotfix freeze", User: "Kim"}, Spec: api.PolicyUpdates{
				id("shop:deployment/cart"): {Add: api.PolicySet{"locked": "true", "locked_user": "Kim", "locked_msg": "hotfix freeze", "tag.cart": "glob:2.3.*"}, Remove: api.PolicySet{"automated": "true"}}}}},
		"sync": {`{"type":"sync","cause":{"Message":"","User":""},"spec":{}}`, api.Spec{Type: "sync", Spec: api.ManualSync{}}},
	} {
		expect(t, s.do(t, post("/api/flux/v9/update-manifests", tc.body)), 200, jsonContentType, `"6e0c41aa-0b1c-4e0d-9a4f-1c2d3e4f5a6b"`)
		if !reflect.DeepEqual(f.spec, tc.want) {
			t.Errorf("%s: submitted %#v", name, f.spec)
		}
	}

	f.calls = nil
	for name, body := range map[string]string{
		"empty":           ``,
		"not JSON":        `type=sync`,
		"unknown type":    `{"type":"scale","cause":{},"spec":{}}`,
		"no spec":         `{"type":"sync","cause":{}}`,
		"invalid ID":      `{"type":"policy","spec":{"cart":{"add":{"locked":"true"}}}}`,
		"bad image ref":   `{"type":"containers","spec":{"Kind":"execute","ContainerSpecs":{"a:deployment/b":[{"Container":"c","Current":"","Target":"x:1"}]}}}`,
		"trailing data":   `{"type":"sync","spec":{}} {}`,
		"wrong spec type": `{"type":"image","spec":"latest"}`,
	} {
		w := s.do(t, post("/api/flux/v9/update-manifests", body))
		if w.Code != 400 {
			t.Errorf("%s: status %d, want 400: %s", name, w.Code, w.Body)
		}
	}
	envelope(t, s.do(t, post("/api/flux/v9/update-manifests", `{"type":"auto","cause":{},"spec":{"Changes":[{"WorkloadID":"a:deployment/b","Container":{"Name":"c","Image":"x:1"},"ImageID":"x:2"}]}}`)),
		422, api.TypeUser, `unknown update type "auto"`)
	envelope(t, s.do(t, post("/api/flux/v9/update-manifests", `{"type":"image","spec":{"ServiceSpecs":["<all>"],"ImageSpec":"ghcr.io/a/b","Kind":"execute"}}`)),
		422, api.TypeUser, "it has no tag")
	envelope(t, s.do(t, post("/api/flux/v9/update-manifests", `{"type":"image","spec":{"ServiceSpecs":["cart"],"ImageSpec":"<all latest>","Kind":"execute"}}`)),
		422, api.TypeUser, "invalid workload spec")
	if c := f.called(); len(c) != 0 {
		t.Errorf("bad specs reached the jobs: %v", c)
	}
}

const jobJSON = `{"Result":{"revision":"4be1d0c9a7e35f2a8c6b0d1e9f7a3c5b2d4e6f80","spec":{"type":"image","cause":{"Message":"","User":"Kim"},"spec":{"ServiceSpecs":["shop:deployment/cart"],"ImageSpec":"ghcr.io/shop/cart:2.4.0","Kind":"execute","Excludes":null,"Force":false}},"result":{"shop:deployment/cart":{"Status":"success","PerContainer":[{"Container":"cart","Current":"ghcr.io/shop/cart:2.3.0","Target":"ghcr.io/shop/cart:2.4.0"}]},"shop:deployment/db":{"Status":"ignored","Error":"does not use image(s)","PerContainer":null}}},"Err":"","StatusString":"succeeded"}`

func TestJobStatus(t *testing.T) {
	f := &fake{}
	if err := json.Unmarshal([]byte(jobJSON), &f.job); err != nil {
		t.Fatal(err)
	}
	s := newServer(t, allDeps(f))
	expect(t, s.do(t, get("/api/flux/v6/jobs?id=6e0c41aa")), 200, jsonContentType, jobJSON)
	if f.jobQueried != "6e0c41aa" {
		t.Errorf("queried %q", f.jobQueried)
	}
	f.job = api.JobStatus{StatusString: api.JobRunning}
	expect(t, s.do(t, get("/api/flux/v6/jobs?id=6e0c41aa")), 200, jsonContentType, `{"Result":{},"Err":"","StatusString":"running"}`)

	envelope(t, s.do(t, get("/api/flux/v6/jobs")), 404, api.TypeMissing, "API endpoint not found")
	envelope(t, s.do(t, get("/api/flux/v6/jobs?ID=x")), 404, api.TypeMissing, "API endpoint not found")
	e := envelope(t, s.do(t, get("/api/flux/v6/jobs?id=")), 404, api.TypeMissing, `unknown job ""`)
	if !strings.HasPrefix(e.Help, "Job not found") {
		t.Errorf("help %q", e.Help)
	}
	f.err = fmt.Errorf("read job notes: %w", api.UnknownJob("nope"))
	e = envelope(t, s.do(t, get("/api/flux/v6/jobs?id=nope")), 404, api.TypeMissing, `read job notes: unknown job "nope"`)
	if !strings.HasPrefix(e.Help, "Job not found") {
		t.Errorf("help %q", e.Help)
	}
}

func TestSyncStatus(t *testing.T) {
	f := &fake{pending: []string{"4be1d0c9a7e35f2a8c6b0d1e9f7a3c5b2d4e6f80"}}
	s := newServer(t, allDeps(f))
	expect(t, s.do(t, get("/api/flux/v6/sync?ref=4be1d0c")), 200, jsonContentType, `["4be1d0c9a7e35f2a8c6b0d1e9f7a3c5b2d4e6f80"]`)
	if f.ref != "4be1d0c" {
		t.Errorf("ref %q", f.ref)
	}
	f.pending = nil
	expect(t, s.do(t, get("/api/flux/v6/sync?ref=4be1d0c9a7e35f2a8c6b0d1e9f7a3c5b2d4e6f80")), 200, jsonContentType, `[]`)

	envelope(t, s.do(t, get("/api/flux/v6/sync")), 404, api.TypeMissing, "API endpoint not found")
	envelope(t, s.do(t, get("/api/flux/v6/sync?ref=")), 422, api.TypeUser, "no ref given")
	f.err = api.UnknownRevision("deadbee")
	envelope(t, s.do(t, get("/api/flux/v6/sync?ref=deadbee")), 404, api.TypeMissing, `unknown revision "deadbee"`)
}

func TestExport(t *testing.T) {
	yaml := "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n"
	f := &fake{exported: []byte(yaml)}
	s := newServer(t, allDeps(f))
	want := `"` + base64.StdEncoding.EncodeToString([]byte(yaml)) + `"`
	expect(t, s.do(t, get("/api/flux/v6/export")), 200, jsonContentType, want)

	w := s.do(t, request{method: http.MethodHead, path: "/api/flux/v6/export"})
	expect(t, w, 200, jsonContentType, "")
	if got := w.Header().Get("Content-Length"); got != fmt.Sprint(len(want)) {
		t.Errorf("HEAD Content-Length %q, want %d", got, len(want))
	}

	f.exported = nil
	expect(t, s.do(t, get("/api/flux/v6/export")), 200, jsonContentType, `""`)
}

const gitConfigJSON = `{"remote":{"url":"ssh://git@git.shop.test/ops/cluster.git","branch":"main","path":"clusters/prod,base"},"publicSSHKey":{"key":"ssh-ed25519 AAAA fluxd\n","fingerprints":{"md5":{"hash":"MD5:3a:9e","randomart":"+--[ED25519 256]--+\n"},"sha256":{"hash":"SHA256:Qx7","randomart":"...\n"}}},"status":"ready","errors":""}`

func TestGitRepoConfigAndIdentity(t *testing.T) {
	f := &fake{}
	if err := json.Unmarshal([]byte(gitConfigJSON), &f.gitConfig); err != nil {
		t.Fatal(err)
	}
	s := newServer(t, allDeps(f))
	expect(t, s.do(t, post("/api/flux/v9/git-repo-config", `false`)), 200, jsonContentType, gitConfigJSON)
	if f.regenerate {
		t.Error("regenerated on false")
	}
	expect(t, s.do(t, post("/api/flux/v9/git-repo-config", `true`)), 200, jsonContentType, gitConfigJSON)
	if !f.regenerate {
		t.Error("did not regenerate on true")
	}
	badReq(t, s.do(t, post("/api/flux/v9/git-repo-config", ``)), "decoding the request body")
	badReq(t, s.do(t, post("/api/flux/v9/git-repo-config", `"true"`)), "decoding the request body")

	expect(t, s.do(t, get("/api/flux/v6/identity.pub")), 200, jsonContentType,
		`{"key":"ssh-ed25519 AAAA fluxd\n","fingerprints":{"md5":{"hash":"MD5:3a:9e","randomart":"+--[ED25519 256]--+\n"},"sha256":{"hash":"SHA256:Qx7","randomart":"...\n"}}}`)
	if f.regenerate {
		t.Error("GET identity.pub regenerated")
	}
	expect(t, s.do(t, post("/api/flux/v6/identity.pub", "")), 204, "", "")
	if !f.regenerate {
		t.Error("POST identity.pub did not regenerate")
	}
}

func TestLegacyUpdateImages(t *testing.T) {
	f := &fake{jobID: "j1"}
	s := newServer(t, allDeps(f))
	expect(t, s.do(t, post("/api/flux/v6/update-images?service=shop:deployment/cart&service=shop:deployment/db&image=ghcr.io/shop/cart:2.4.0&kind=execute&exclude=shop:deployment/legacy&user=Kim&message=go", "")),
		200, jsonContentType, `"j1"`)
	want := api.Spec{Type: "image", Cause: api.Cause{User: "Kim", Message: "go"}, Spec: api.ReleaseImageSpec{
		ServiceSpecs: []api.ResourceSpec{"shop:deployment/cart", "shop:deployment/db"}, ImageSpec: "ghcr.io/shop/cart:2.4.0",
		Kind: api.ReleaseKindExecute, Excludes: []resource.ID{id("shop:deployment/legacy")}}}
	if !reflect.DeepEqual(f.spec, want) {
		t.Errorf("submitted %#v", f.spec)
	}
	expect(t, s.do(t, post("/api/flux/v6/update-images?service=%3Call%3E&image=%3Call+latest%3E&kind=plan", "")), 200, jsonContentType, `"j1"`)

	for _, q := range []string{"image=a:1&kind=plan", "service=%3Call%3E&kind=plan", "service=%3Call%3E&image=a:1"} {
		envelope(t, s.do(t, post("/api/flux/v6/update-images?"+q, "")), 404, api.TypeMissing, "API endpoint not found")
	}
	badReq(t, s.do(t, post("/api/flux/v6/update-images?service=cart&image=a:1&kind=plan", "")), `parsing service spec "cart"`)
	badReq(t, s.do(t, post("/api/flux/v6/update-images?service=%3Call%3E&image=a&kind=plan", "")), `parsing image spec "a"`)
	badReq(t, s.do(t, post("/api/flux/v6/update-images?service=%3Call%3E&image=a::1&kind=plan", "")), `parsing image spec "a::1"`)
	badReq(t, s.do(t, post("/api/flux/v6/update-images?service=%3Call%3E&image=a:1&kind=dry", "")), `parsing release kind "dry"`)
	badReq(t, s.do(t, post("/api/flux/v6/update-images?service=%3Call%3E&image=a:1&kind=plan&exclude=x", "")), `parsing excluded workload "x"`)
}

func TestLegacyPolicies(t *testing.T) {
	f := &fake{jobID: "j2"}
	s := newServer(t, allDeps(f))
	rq := request{method: http.MethodPatch, path: "/api/flux/v6/policies?user=Kim&message=freeze", body: `{"shop:deployment/cart":{"add":["locked"],"remove":null}}`}
	expect(t, s.do(t, rq), 200, jsonContentType, `"j2"`)
	want := api.Spec{Type: "policy", Cause: api.Cause{User: "Kim", Message: "freeze"}, Spec: api.PolicyUpdates{
		id("shop:deployment/cart"): {Add: api.PolicySet{"locked": "true"}}}}
	if !reflect.DeepEqual(f.spec, want) {
		t.Errorf("submitted %#v", f.spec)
	}
	rq.body = `{"cart":{}}`
	badReq(t, s.do(t, rq), "decoding the request body")
}

func TestStatus(t *testing.T) {
	last := time.Date(2024, 3, 9, 8, 0, 0, 0, time.UTC)
	rec := notes.SyncRecord{Version: 1, Type: notes.TypeSync, Time: last, Cluster: "prod", Commit: "1d3a", DurationMS: 1500, Counts: notes.Counts{Applied: 2, Unchanged: 9}}
	f := &fake{status: api.Status{Cluster: "prod",
		Git:  api.GitStatus{URL: "ssh://git@example.com/ops/cluster.git", Branch: "main", Head: "4be1"},
		Sync: api.SyncSummary{Tag: "flux-sync/prod", Applied: "1d3a", LastSync: &last, LastRecord: &rec},
	}}
	s := newServer(t, allDeps(f))
	expect(t, s.do(t, get("/api/flux/v12/status")), 200, jsonContentType,
		`{"version":"1.2.3","cluster":"prod","git":{"url":"ssh://git@example.com/ops/cluster.git","branch":"main","paths":[],"readOnly":false,"head":"4be1","error":""},`+
			`"sync":{"tag":"flux-sync/prod","applied":"1d3a","pending":[],"lastSync":"2024-03-09T08:00:00Z","lastRecord":{"version":1,"type":"sync","time":"2024-03-09T08:00:00Z","cluster":"prod","commit":"1d3a","durationMs":1500,"counts":{"applied":2,"unchanged":9,"pruned":0,"skipped":0,"failed":0}},"lastError":"","pendingPush":false}}`)
}

func TestRouteMismatches(t *testing.T) {
	s := newServer(t, allDeps(&fake{workloads: workloads()}))
	for _, rq := range []request{
		get("/api/flux/v6/nothing"),
		get("/api/flux/v6/services/"), // trailing slash: no redirect
		get("/api/flux/v11/ping/"),
		post("/api/flux/v6/services", ""), // wrong method: 404, never 405
		{method: http.MethodDelete, path: "/api/flux/v6/jobs?id=x"},
		{method: http.MethodOptions, path: "/api/flux/v6/services"},
		get("/api/flux/v9/update-manifests"),
		get("/api/flux/v12/services"),
		get("/api/flux/"),
		get("/api/flux/v6//services"),
		get("/api/flux/V6/services"),
	} {
		e := envelope(t, s.do(t, rq), 404, api.TypeMissing, "API endpoint not found")
		if !strings.Contains(e.Help, "upgrade") || !strings.Contains(e.Help, strings.SplitN(rq.path, "?", 2)[0]) {
			t.Errorf("%s %s: help %q", rq.method, rq.path, e.Help)
		}
	}
	// HEAD gets the status and headers only.
	w := s.do(t, request{method: http.MethodHead, path: "/api/flux/v6/services"})
	expect(t, w, 404, jsonContentType, "")
	if w.Header().Get("Content-Length") == "0" {
		t.Error("HEAD: Content-Length of an empty body, want the envelope's")
	}

	// Outside the API prefix: still the envelope, never a redirect.
	envelope(t, s.do(t, get("/")), 404, api.TypeMissing, "API endpoint not found")
	envelope(t, s.do(t, get("/api/flux")), 404, api.TypeMissing, "API endpoint not found")
	envelope(t, s.do(t, get("/v6/services")), 404, api.TypeMissing, "API endpoint not found")

	for _, v := range []string{"v1", "v2", "v3", "v4", "v5"} {
		for _, rq := range []request{get("/api/flux/" + v + "/services"), post("/api/flux/"+v+"/anything/at/all", "{}")} {
			e := envelope(t, s.do(t, rq), 410, api.TypeMissing, "API endpoint deprecated")
			if !strings.Contains(e.Help, "upgrade") {
				t.Errorf("%s: help %q", rq.path, e.Help)
			}
		}
	}
	// Only /vN/: /v10/ is not /v1/.
	envelope(t, s.do(t, get("/api/flux/v10/nothing")), 404, api.TypeMissing, "API endpoint not found")
}

func TestBadQuery(t *testing.T) {
	s := newServer(t, allDeps(&fake{}))
	badReq(t, s.do(t, get("/api/flux/v6/services?namespace=%zz")), "invalid query")
	badReq(t, s.do(t, get("/api/flux/v6/jobs?id=%")), "invalid query")
}

func TestBodyLimit(t *testing.T) {
	f := &fake{jobID: "j"}
	s := newServer(t, allDeps(f), WithMaxBodyBytes(1024))
	big := `{"type":"sync","cause":{"Message":"` + strings.Repeat("x", 2048) + `","User":""},"spec":{}}`
	e := envelope(t, s.do(t, post("/api/flux/v9/update-manifests", big)), 413, api.TypeUser, "request body larger than 1024 bytes")
	if !strings.Contains(e.Help, "1024 bytes") {
		t.Errorf("help %q", e.Help)
	}
	envelope(t, s.do(t, post("/api/flux/v11/notify", `{"Kind":"git","Source":{"URL":"`+strings.Repeat("x", 2048)+`"}}`)), 413, api.TypeUser, "larger than")
	// Under the limit is fine.
	expect(t, s.do(t, post("/api/flux/v9/update-manifests", `{"type":"sync","cause":{"Message":"","User":""},"spec":{}}`)), 200, jsonContentType, `"j"`)

	// The default is 1 MiB.
	d := newServer(t, allDeps(f))
	huge := `{"type":"sync","cause":{"Message":"` + strings.Repeat("x", DefaultMaxBodyBytes) + `","User":""},"spec":{}}`
	envelope(t, d.do(t, post("/api/flux/v9/update-manifests", huge)), 413, api.TypeUser, "larger than 1048576 bytes")
}

func TestDependencyErrors(t *testing.T) {
	f := &fake{}
	s := newServer(t, allDeps(f))
	for _, tc := range []struct {
		err  error
		code int
		typ  api.ErrorType
		help string
	}{
		{api.MissingError(errors.New("no such workload"), "Look again.\n"), 404, api.TypeMissing, "Look again.\n"},
		{fmt.Errorf("plan: %w", api.UserError(errors.New("locked"), "Unlock it.\n")), 422, api.TypeUser, "Unlock it.\n"},
		{api.ServerError(errors.New("kube API down"), ""), 500, api.TypeServer, "Error: kube API down\n"},
		{&api.Error{Type: "strange", Err: errors.New("odd")}, 500, api.TypeServer, "Error: odd\n"},
		{errors.New("git: reference not found"), 422, api.TypeUser, "Error: git: reference not found\n\nfluxd has no more specific help"},
	} {
		f.err = tc.err
		e := envelope(t, s.do(t, get("/api/flux/v6/services")), tc.code, tc.typ, tc.err.Error())
		if !strings.HasPrefix(e.Help, tc.help) {
			t.Errorf("%v: help %q, want it to start %q", tc.err, e.Help, tc.help)
		}
	}
}

func TestNotWired(t *testing.T) {
	s := newServer(t, Deps{Version: "0.1.0"})
	for _, rq := range []request{
		post("/api/flux/v11/notify", `{"Kind":"git","Source":{"URL":"u","Branch":"main"}}`),
		get("/api/flux/v6/services"),
		get("/api/flux/v10/images"),
		post("/api/flux/v9/update-manifests", `{"type":"sync","cause":{},"spec":{}}`),
		get("/api/flux/v6/jobs?id=x"),
		get("/api/flux/v6/sync?ref=abcdef0"),
		get("/api/flux/v6/export"),
		post("/api/flux/v9/git-repo-config", "false"),
		get("/api/flux/v6/identity.pub"),
		post("/api/flux/v6/identity.pub", ""),
		get("/api/flux/v12/status"),
	} {
		envelope(t, s.do(t, rq), 501, api.TypeServer, "not available in this fluxd yet")
	}
	expect(t, s.do(t, get("/api/flux/v11/version")), 200, jsonContentType, `"0.1.0"`)
	expect(t, s.do(t, get("/api/flux/v11/ping")), 204, "", "")
}

func TestPanicRecovered(t *testing.T) {
	f := &fake{panic: true}
	s := newServer(t, allDeps(f))
	e := envelope(t, s.do(t, get("/api/flux/v6/services")), 500, api.TypeServer, "internal error")
	if strings.Contains(e.Error(), "fake") {
		t.Errorf("the panic value leaked: %v", e.Err)
	}
	// The server still serves.
	f.panic = false
	expect(t, s.do(t, get("/api/flux/v11/version")), 200, jsonContentType, `"1.2.3"`)
}

func TestNoBadInputReachesA500(t *testing.T) {
	s := newServer(t, allDeps(&fake{}))
	paths := []string{"/v11/ping", "/v11/version", "/v11/notify", "/v6/services", "/v11/services", "/v6/images", "/v10/images",
		"/v9/update-manifests", "/v6/jobs", "/v6/sync", "/v6/export", "/v9/git-repo-config", "/v6/update-images", "/v6/policies",
		"/v6/identity.pub", "/v12/status", "/v3/x", "/x"}
	queries := []string{"", "?", "?id=&ref=&service=&services=&namespace=&containerFields=", "?service=%3Call%3E&image=%3C&kind=&exclude=",
		"?services=,,,", "?containerFields=,", "?%", "?id=%00&ref=%00"}
	bodies := []string{"", "null", "{}", "[]", `"x"`, "true", "{", `{"type":null}`, `{"Kind":null,"Source":null}`, `{"a:deployment/b":{"add":7}}`, "\x00\xff"}
	for _, p := range paths {
		for _, q := range queries {
			for _, b := range bodies {
				for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodHead} {
					w := s.do(t, request{method: m, path: "/api/flux" + p + q, body: b})
					if w.Code >= 500 {
						t.Errorf("%s %s%s %q: %d %s", m, p, q, b, w.Code, w.Body)
					}
				}
			}
		}
	}
}
