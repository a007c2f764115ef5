package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/fluxd/fluxd/gitstate"
	"github.com/fluxd/fluxd/kube"
	"github.com/fluxd/fluxd/kube/resource"
	"github.com/fluxd/fluxd/notes"
	"github.com/fluxd/fluxd/server/api"
)

// fakeFiles is a git repository whose commits hold the files the test
// says, counting the reads.
type fakeFiles struct {
	commits map[string][]resource.File
	reads   int
}

func (f *fakeFiles) Files(commit string, paths []string) ([]resource.File, error) {
	f.reads++
	files, ok := f.commits[commit]
	if !ok {
		return nil, fmt.Errorf("no commit %s", commit)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%s: %w", strings.Join(paths, ","), gitstate.ErrPathNotFound)
	}
	return files, nil
}

// deployment is a manifest of a Deployment; containers are name=image
// pairs, and those named init-* are init containers.
func deployment(namespace, name string, annotations map[string]string, containers ...string) resource.File {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: %s\n", name)
	if namespace != "" {
		fmt.Fprintf(&b, "  namespace: %s\n", namespace)
	}
	if len(annotations) > 0 {
		b.WriteString("  annotations:\n")
		for k, v := range annotations {
			fmt.Fprintf(&b, "    %s: %q\n", k, v)
		}
	}
	b.WriteString("spec:\n  template:\n    spec:\n")
	var main, init []string
	for _, c := range containers {
		n, img, _ := strings.Cut(c, "=")
		entry := fmt.Sprintf("        - name: %s\n          image: %s\n", n, img)
		if strings.HasPrefix(n, "init-") {
			init = append(init, entry)
		} else {
			main = append(main, entry)
		}
	}
	b.WriteString("      containers:\n" + strings.Join(main, ""))
	if len(init) > 0 {
		b.WriteString("      initContainers:\n" + strings.Join(init, ""))
	}
	return resource.File{Path: name + ".yaml", Data: []byte(b.String())}
}

// live is a live Deployment; containers are name=image pairs.
func live(id string, containers ...string) kube.Workload {
	w := kube.Workload{ID: mustID(id), Status: kube.StatusReady, Containers: []kube.Container{}}
	for _, c := range containers {
		n, img, _ := strings.Cut(c, "=")
		w.Containers = append(w.Containers, kube.Container{Name: n, Image: img, Init: strings.HasPrefix(n, "init-")})
	}
	return w
}

func mustID(s string) resource.ID {
	id, err := resource.ParseID(s)
	if err != nil {
		panic(err)
	}
	return id
}

func repoImages(cs api.ControllerStatus) map[string]string {
	out := map[string]string{}
	for _, c := range cs.Containers {
		out[c.Name] = string(c.Current.ID) + " " + c.RepoImage
	}
	return out
}

// list-workloads gives each container its live image, and the image of
// the manifests at the sync tag's commit beside it where the two differ.
func TestListWorkloadsRepoImage(t *testing.T) {
	files := &fakeFiles{commits: map[string][]resource.File{
		"c1": {
			deployment("shop", "cart", map[string]string{"fluxcd.io/locked": "true"}, "cart=ghcr.io/shop/cart:2.4.0", "sidecar=envoy:1.30", "init-db=migrate:7"),
			// No namespace: sync puts it in the default one.
			deployment("", "web", nil, "nginx=nginx:1.28"),
		},
		"c2": {
			deployment("shop", "cart", nil, "cart=ghcr.io/shop/cart:2.3.0", "sidecar=envoy:1.30", "init-db=migrate:7"),
			deployment("", "web", nil, "nginx=nginx:1.27"),
		},
	}}
	ws := []kube.Workload{
		live("default:deployment/web", "nginx=nginx:1.27"),
		live("shop:deployment/cart", "cart=ghcr.io/shop/cart:2.3.0", "sidecar=envoy:1.30", "init-db=migrate:6", "debug=busybox"),
		live("shop:deployment/byhand", "app=nginx:1.27"),
	}
	var m manifestCache
	inRepo, err := m.workloads(files, "c1", []string{"deploy"})
	if err != nil {
		t.Fatal(err)
	}
	rec := &notes.SyncRecord{Errors: []resource.FileError{{Path: "cart.yaml", Object: "shop:deployment/cart", Error: "boom"}}}
	got := controllerStatuses(ws, inRepo, rec, false, nil)
	if len(got) != 3 {
		t.Fatalf("got %d workloads: %+v", len(got), got)
	}
	web, cart, byhand := got[0], got[1], got[2]
	if r := repoImages(web); r["nginx"] != "nginx:1.27 nginx:1.28" || web.ReadOnly != api.ReadOnlyOK {
		t.Errorf("web, in git without a namespace: %v, read-only %q", r, web.ReadOnly)
	}
	want := map[string]string{
		"cart":    "ghcr.io/shop/cart:2.3.0 ghcr.io/shop/cart:2.4.0",
		"sidecar": "envoy:1.30 ", // the same in git: no RepoImage
		"init-db": "migrate:6 migrate:7",
		"debug":   "busybox ", // not in git
	}
	if r := repoImages(cart); fmt.Sprint(r) != fmt.Sprint(want) {
		t.Errorf("cart: %v, want %v", r, want)
	}
	if !cart.Locked || cart.SyncError != "boom" {
		t.Errorf("cart: locked %v, sync error %q", cart.Locked, cart.SyncError)
	}
	if r := repoImages(byhand); r["app"] != "nginx:1.27 " || byhand.ReadOnly != api.ReadOnlyMissing {
		t.Errorf("byhand, not in git: %v, read-only %q", r, byhand.ReadOnly)
	}

	// On the wire RepoImage is beside Current, and only where they differ.
	b, err := json.Marshal(cart.Containers)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), `"RepoImage"`); n != 2 || !strings.Contains(string(b), `"Current":{"ID":"ghcr.io/shop/cart:2.3.0","Labels":{}},"LatestFiltered":{"ID":"","Labels":{}},"RepoImage":"ghcr.io/shop/cart:2.4.0"`) {
		t.Errorf("%d RepoImage keys, want 2:\n%s", n, b)
	}

	// One read and parse per commit, however many calls.
	for range 3 {
		if _, err := m.workloads(files, "c1", []string{"deploy"}); err != nil {
			t.Fatal(err)
		}
	}
	if files.reads != 1 {
		t.Errorf("%d reads of one commit, want 1", files.reads)
	}
	// The tag moves to a commit that matches the cluster: nothing beside.
	if inRepo, err = m.workloads(files, "c2", []string{"deploy"}); err != nil {
		t.Fatal(err)
	}
	for _, cs := range controllerStatuses(ws, inRepo, nil, false, nil) {
		for _, c := range cs.Containers {
			if c.Name != "init-db" && c.RepoImage != "" {
				t.Errorf("%s %s: RepoImage %q at a commit that matches", cs.ID, c.Name, c.RepoImage)
			}
		}
	}
	if files.reads != 2 {
		t.Errorf("%d reads of two commits, want 2", files.reads)
	}

	// Only the workloads asked for.
	if got := controllerStatuses(ws, inRepo, nil, true, []resource.ID{mustID("shop:deployment/cart")}); len(got) != 1 || got[0].ID.Name != "cart" || got[0].ReadOnly != api.ReadOnlyROMode {
		t.Errorf("one asked for: %+v", got)
	}
}

// Before the first fetch there is no commit, and a git path that does not
// exist holds no manifests: every workload is then not in the repo, and
// nothing is set beside its images. Other read errors are errors.
func TestManifestCacheNoManifests(t *testing.T) {
	files := &fakeFiles{commits: map[string][]resource.File{"empty": nil}}
	ws := []kube.Workload{live("shop:deployment/cart", "cart=ghcr.io/shop/cart:2.3.0")}
	var m manifestCache
	for _, commit := range []string{"", "empty"} {
		inRepo, err := m.workloads(files, commit, []string{"deploy"})
		if err != nil {
			t.Fatalf("%q: %v", commit, err)
		}
		got := controllerStatuses(ws, inRepo, nil, false, nil)
		if got[0].ReadOnly != api.ReadOnlyMissing || got[0].Containers[0].RepoImage != "" {
			t.Errorf("%q: %+v", commit, got[0])
		}
	}
	if _, err := m.workloads(files, "missing", nil); err == nil || errors.Is(err, gitstate.ErrPathNotFound) {
		t.Errorf("a commit that cannot be read: %v", err)
	}
}
