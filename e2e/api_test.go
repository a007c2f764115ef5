package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fluxd/fluxd/server/api"
)

// fluxctl runs our fluxctl against d and returns stdout, stderr and the
// exit code.
func fluxctl(t *testing.T, d *daemon, token string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "fluxctl"), args...)
	cmd.Env = append(os.Environ(), "FLUX_URL="+d.url, "FLUX_TOKEN="+token, "FLUX_TIMEOUT=60s")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

func TestAPIStatusSyncAndToken(t *testing.T) {
	t.Parallel()
	ns, w := testName(t), newWorkRepo(t)
	c1 := w.commit("v1", map[string]string{"all.yaml": namespaceYAML(ns) + "---\n" + configMapYAML(ns, "cm", map[string]string{"v": "1"})})
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("s3cret-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := fluxdArgs(w, ns, "--token-file", tokenFile)
	// No polling to speak of: only `fluxctl sync` makes fluxd fetch.
	for i, a := range args {
		if a == "--git-poll-interval" {
			args[i+1] = "1h"
		}
	}
	d := startFluxd(t, "fluxd", args...)
	waitTag(t, w, ns, c1)

	// A wrong token: 401, one readable line, non-zero exit; the token is not logged.
	_, stderr, code := fluxctl(t, d, "wrong", "status")
	if code == 0 || !strings.Contains(stderr, "token") {
		t.Fatalf("wrong token: exit %d, stderr %q", code, stderr)
	}
	resp, err := http.Get(d.url + "/v12/status")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no token: %s", resp.Status)
	}

	status := func() api.Status {
		t.Helper()
		out, stderr, code := fluxctl(t, d, "s3cret-token", "status", "-o", "json")
		if code != 0 {
			t.Fatalf("fluxctl status: exit %d: %s", code, stderr)
		}
		var s api.Status
		if err := json.Unmarshal([]byte(out), &s); err != nil {
			t.Fatalf("status JSON: %v\n%s", err, out)
		}
		return s
	}
	s := status()
	if s.Git.Head != c1 || s.Sync.Applied != c1 || len(s.Sync.Pending) != 0 || s.Sync.LastRecord == nil || s.Sync.LastRecord.Commit != c1 || s.Cluster != ns {
		t.Fatalf("status before: %+v", s)
	}
	out, _, _ := fluxctl(t, d, "s3cret-token", "status")
	for _, want := range []string{"Sync tag", "flux-sync/" + ns, c1, "Pending commits"} {
		if !strings.Contains(out, want) {
			t.Errorf("status table lacks %q:\n%s", want, out)
		}
	}

	c2 := w.commit("v2", map[string]string{"all.yaml": namespaceYAML(ns) + "---\n" + configMapYAML(ns, "cm", map[string]string{"v": "2"})})
	_, stderr, code = fluxctl(t, d, "s3cret-token", "sync")
	if code != 0 || !strings.Contains(stderr, "Revision of main to apply is "+c2[:7]) || !strings.Contains(stderr, "Done.") {
		t.Fatalf("fluxctl sync: exit %d\n%s", code, stderr)
	}
	if v := configMapData(t, ns, "cm")["v"]; v != "2" {
		t.Fatalf("after fluxctl sync, v=%s", v)
	}
	s = status()
	if s.Git.Head != c2 || s.Sync.Applied != c2 || len(s.Sync.Pending) != 0 {
		t.Fatalf("status after: %+v", s)
	}
	if s.Registry == nil || s.Registry.Cache != "embedded" || s.Registry.Hosts == nil {
		t.Fatalf("status has no registry cache state: %+v", s.Registry)
	}

	// A broken commit: fluxctl sync says so instead of waiting forever.
	w.commit("broken", map[string]string{"bad.yaml": "kind: [\n"})
	_, stderr, code = fluxctl(t, d, "s3cret-token", "sync")
	if code == 0 || !strings.Contains(stderr, "bad.yaml") {
		t.Fatalf("fluxctl sync of a broken commit: exit %d\n%s", code, stderr)
	}

	// Metrics need no token and show the syncs.
	resp, err = http.Get(strings.TrimSuffix(d.url, "/api/flux") + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "fluxd_sync_duration_seconds") || !strings.Contains(string(body), "fluxd_git_fetch_duration_seconds") {
		t.Fatalf("metrics:\n%s", body)
	}
	if log := d.proc.Tail(1 << 20); strings.Contains(log, "s3cret-token") {
		t.Fatal("the token appears in fluxd's log")
	}
}

// fluxctl diff after a hand edit shows the field that differs, and nothing
// for the objects that match.
func TestDiffAfterHandEdit(t *testing.T) {
	t.Parallel()
	ns, w := testName(t), newWorkRepo(t)
	c1 := w.commit("v1", map[string]string{"all.yaml": namespaceYAML(ns) + "---\n" +
		configMapYAML(ns, "cm", map[string]string{"mode": "safe"}) + "---\n" + configMapYAML(ns, "other", map[string]string{"x": "1"})})
	d := startFluxd(t, "fluxd", fluxdArgs(w, ns)...)
	waitTag(t, w, ns, c1)
	out, stderr, code := fluxctl(t, d, "", "diff")
	if code != 0 || !strings.Contains(stderr, "No changes") {
		t.Fatalf("diff before the edit: exit %d\n%s%s", code, out, stderr)
	}
	if _, err := env.Kube.Kubectl(context.Background(), "patch", "configmap", "cm", "-n", ns, "--type=merge", "-p", `{"data":{"mode":"yolo"}}`); err != nil {
		t.Fatal(err)
	}
	out, stderr, code = fluxctl(t, d, "", "diff")
	if code != 0 || !strings.Contains(out, "configured "+ns+":configmap/cm (all.yaml)") ||
		!strings.Contains(out, "-  mode: yolo") || !strings.Contains(out, "+  mode: safe") || strings.Contains(out, "configmap/other") {
		t.Fatalf("diff after the edit: exit %d\n%s%s", code, out, stderr)
	}
}

// Every route with bad input gets a 4xx with Flux v1's envelope (or, for an
// undecodable body, a 400), never a 5xx; fluxd keeps serving.
func TestAPIBadInput(t *testing.T) {
	t.Parallel()
	ns, w := testName(t), newWorkRepo(t)
	c1 := w.commit("v1", map[string]string{"all.yaml": namespaceYAML(ns)})
	d := startFluxd(t, "fluxd", fluxdArgs(w, ns)...)
	waitTag(t, w, ns, c1)
	huge := strings.Repeat("x", 2<<20)
	for _, tc := range []struct {
		method, path, body string
		want               int
	}{
		{"GET", "/v99/nothing", "", 404},
		{"GET", "/v3/services", "", 410},
		{"DELETE", "/v6/services", "", 404},
		{"GET", "/v6/services/", "", 404},
		{"GET", "/v6/services?services=not-an-id", "", 400},
		{"GET", "/v6/services?namespace=a&services=a:deployment/b", "", 422},
		{"GET", "/v6/services?namespace=no-such-namespace", "", 404},
		{"GET", "/v6/jobs", "", 404},
		{"GET", "/v6/jobs?id=nope", "", 404},
		{"GET", "/v6/sync", "", 404},
		{"GET", "/v6/sync?ref=", "", 422},
		{"GET", "/v6/sync?ref=0123456789abcdef0123456789abcdef01234567", "", 404},
		{"GET", "/v10/images?containerFields=Bogus", "", 422},
		{"POST", "/v9/update-manifests", "{not json", 400},
		{"POST", "/v9/update-manifests", `{"type":"nope","spec":{}}`, 400},
		{"POST", "/v9/update-manifests", `{"type":"auto","spec":{"Changes":[]}}`, 422},
		{"POST", "/v9/update-manifests", `{"type":"policy","spec":{"` + ns + `:deployment/missing":{"add":{"locked":"true"}}}}`, 422},
		{"POST", "/v9/update-manifests", `{"type":"policy","spec":{"x":` + `"` + huge + `"}}`, 413},
		{"POST", "/v11/notify", `{"Kind":"bogus"}`, 400},
		{"POST", "/v9/git-repo-config", "maybe", 400},
	} {
		req, err := http.NewRequest(tc.method, d.url+tc.path, strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Accept", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s: %d, want %d: %.200s", tc.method, tc.path, resp.StatusCode, tc.want, body)
			continue
		}
		if tc.want != 400 {
			var env struct{ Type, Help, Error string }
			if err := json.Unmarshal(body, &env); err != nil || env.Error == "" || env.Help == "" {
				t.Errorf("%s %s: not Flux v1's envelope: %.200s", tc.method, tc.path, body)
			}
		}
	}
	if _, stderr, code := fluxctl(t, d, "", "status"); code != 0 {
		t.Fatalf("fluxd stopped answering after bad input: %s", stderr)
	}
}
