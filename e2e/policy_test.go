package e2e

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fluxd/fluxd/kube/resource"
	"github.com/fluxd/fluxd/server/api"
	"github.com/fluxd/fluxd/server/client"
)

// commitCount is the number of commits on the remote branch.
func (w *workRepo) commitCount() int {
	w.t.Helper()
	w.git("fetch", "-q", "origin", "main")
	n, _ := strconv.Atoi(w.git("rev-list", "--count", "origin/main"))
	return n
}

// remoteFile is a file at the remote branch head.
func (w *workRepo) remoteFile(path string) string {
	w.t.Helper()
	w.git("fetch", "-q", "origin", "main")
	return w.git("show", "origin/main:"+path)
}

const cartWithComments = `# The cart service.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: cart
  namespace: %s
  annotations:
    flux.weave.works/automated: 'true'   # legacy prefix, kept
spec:
  replicas: 0
  selector: {matchLabels: {app: cart}}
  template:
    metadata:
      labels: {app: cart}
    spec:
      containers:
      - name: cart
        image: ghcr.io/example/cart:2.3.0   # pinned
`

func TestPolicyCommands(t *testing.T) {
	t.Parallel()
	ns, w := testName(t), newWorkRepo(t)
	w.commit("workloads", map[string]string{
		"ns.yaml":      namespaceYAML(ns),
		"podinfo.yaml": deploymentYAML(ns, "podinfo", "ghcr.io/example/podinfo:1.0.0", 0),
		"cart.yaml":    fmt.Sprintf(cartWithComments, ns),
	})
	d := startFluxd(t, "fluxd", fluxdArgs(w, ns)...)
	waitFor(t, syncWait, "the first sync", func() (bool, string) { return w.syncTag(ns) != "", "no tag" })
	run := func(args ...string) (string, int) {
		t.Helper()
		out, stderr, code := fluxctl(t, d, "", args...)
		return out + stderr, code
	}

	before := w.commitCount()
	out, code := run("automate", "-w", "deployment/podinfo", "-n", ns)
	if code != 0 || !strings.Contains(out, "Commit pushed") || !strings.Contains(out, "Commit applied") {
		t.Fatalf("automate: exit %d\n%s", code, out)
	}
	if got := w.remoteFile("podinfo.yaml"); !strings.Contains(got, `fluxcd.io/automated: "true"`) {
		t.Fatalf("podinfo.yaml after automate:\n%s", got)
	}
	if n := w.commitCount(); n != before+1 {
		t.Fatalf("%d commits after automate, want %d", n, before+1)
	}
	if log := w.git("log", "-1", "--format=%s%n%an <%ae>", "origin/main"); !strings.Contains(log, "Automated: "+ns+":deployment/podinfo") {
		t.Fatalf("commit: %s", log)
	}
	w.git("fetch", "-q", "-f", "origin", "refs/notes/*:refs/notes/*")
	if note := w.git("log", "-1", "--notes=flux", "origin/main"); !strings.Contains(note, `"type": "job"`) || !strings.Contains(note, `"success"`) {
		t.Fatalf("job note:\n%s", note)
	}

	// Two workloads, one commit; the legacy prefix and the comments stay.
	before = w.commitCount()
	out, code = run("lock", "-w", ns+":deployment/podinfo", "-w", ns+":deployment/cart", "-m", "release freeze: QA", "--user", "Kim <kim@example.com>")
	if code != 0 {
		t.Fatalf("lock: exit %d\n%s", code, out)
	}
	if n := w.commitCount(); n != before+1 {
		t.Fatalf("%d commits after locking two workloads, want one more than %d", n, before)
	}
	cart := w.remoteFile("cart.yaml")
	for _, want := range []string{"# The cart service.", "flux.weave.works/automated: 'true'   # legacy prefix, kept", "flux.weave.works/locked: \"true\"", "release freeze: QA", "image: ghcr.io/example/cart:2.3.0   # pinned"} {
		if !strings.Contains(cart, want) {
			t.Errorf("cart.yaml lacks %q:\n%s", want, cart)
		}
	}
	if a := w.git("log", "-1", "--format=%an <%ae>", "origin/main"); a != "Kim <kim@example.com>" {
		t.Errorf("author %q", a)
	}

	// Requests that must not commit.
	before = w.commitCount()
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"lock", "-w", ns + ":deployment/cart"}, "already locked"},
		{[]string{"automate", "-w", ns + ":deployment/nope"}, "not in the repository"},
		{[]string{"policy", "-w", ns + ":deployment/podinfo", "--tag", "sidecar=1.*"}, "sidecar"},
		{[]string{"policy", "-w", ns + ":deployment/podinfo", "--tag", "podinfo=semver:>>1"}, "semver"},
		{[]string{"policy", "-w", ns + ":deployment/podinfo", "--tag", "podinfo=regex:(("}, "regex"},
		{[]string{"check-release", "00000000-0000-0000-0000-000000000000"}, "unknown job"},
	} {
		out, code := run(bad.args...)
		if code == 0 || !strings.Contains(out, bad.want) {
			t.Errorf("%v: exit %d, want an error mentioning %q:\n%s", bad.args, code, bad.want, out)
		}
	}
	if n := w.commitCount(); n != before {
		t.Fatalf("bad requests made %d commits", n-before)
	}

	out, code = run("policy", "-w", ns+":deployment/podinfo", "--tag", "podinfo=semver:~1.0", "--unlock", "-o", "json")
	if code != 0 {
		t.Fatalf("policy: exit %d\n%s", code, out)
	}
	if got := w.remoteFile("podinfo.yaml"); !strings.Contains(got, `fluxcd.io/tag.podinfo: semver:~1.0`) && !strings.Contains(got, `fluxcd.io/tag.podinfo: "semver:~1.0"`) || strings.Contains(got, "locked") {
		t.Fatalf("podinfo.yaml after policy:\n%s", got)
	}

	// list-workloads shows what git says.
	ws := listWorkloads(t, d, ns)
	if p := ws["podinfo"]; !p.Automated || p.Locked || p.Policies["tag.podinfo"] != "semver:~1.0" {
		t.Errorf("podinfo: %+v", p)
	}
	if c := ws["cart"]; !c.Automated || !c.Locked || c.Policies["locked_msg"] != "release freeze: QA" || c.Policies["locked_user"] != "Kim <kim@example.com>" {
		t.Errorf("cart: %+v", c)
	}

	// Plain git: an annotation removed by hand takes effect after the sync.
	w.git("pull", "-q", "origin", "main")
	edited := strings.Replace(w.remoteFile("cart.yaml"), "    flux.weave.works/automated: 'true'   # legacy prefix, kept\n", "", 1)
	c := w.commit("Deautomate cart by hand", map[string]string{"cart.yaml": edited + "\n"})
	waitTag(t, w, ns, c)
	waitFor(t, syncWait, "cart to show as not automated", func() (bool, string) {
		c := listWorkloads(t, d, ns)["cart"]
		return !c.Automated, fmt.Sprintf("%+v", c)
	})
}

func listWorkloads(t *testing.T, d *daemon, ns string) map[string]api.ControllerStatus {
	t.Helper()
	cl, err := client.New(d.url, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	ws, err := cl.ListWorkloads(context.Background(), ns)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]api.ControllerStatus{}
	for _, w := range ws {
		out[w.ID.Name] = w
	}
	return out
}

// Twenty policy requests at once, on twenty workloads: every one lands, in
// its own commit, with its note; none is lost. A job's status is read back
// from its note after fluxd restarts.
func TestPolicyConcurrentAndRestart(t *testing.T) {
	t.Parallel()
	ns, w := testName(t), newWorkRepo(t)
	files := map[string]string{"ns.yaml": namespaceYAML(ns)}
	for i := 0; i < 20; i++ {
		files[fmt.Sprintf("app-%02d.yaml", i)] = deploymentYAML(ns, fmt.Sprintf("app-%02d", i), "nginx:1.27", 0)
	}
	w.commit("twenty apps", files)
	args := fluxdArgs(w, ns)
	d := startFluxd(t, "first", args...)
	waitFor(t, syncWait, "the first sync", func() (bool, string) { return w.syncTag(ns) != "", "no tag" })
	before := w.commitCount()

	cl, err := client.New(d.url, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ids := make([]string, 20)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := resource.MakeID(ns, "deployment", fmt.Sprintf("app-%02d", i))
			jobID, err := cl.UpdateManifests(ctx, api.Spec{Type: api.UpdatePolicy, Cause: api.Cause{User: "Bot <bot@example.com>"},
				Spec: api.PolicyUpdates{id: {Add: api.PolicySet{"automated": "true"}}}})
			ids[i] = jobID
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range ids {
		waitFor(t, syncWait, "job "+id, func() (bool, string) {
			st, err := cl.JobStatus(ctx, id)
			if err != nil {
				return false, err.Error()
			}
			return st.StatusString == api.JobSucceeded, string(st.StatusString) + " " + st.Err
		})
	}
	if n := w.commitCount(); n != before+20 {
		t.Fatalf("%d commits for 20 jobs", n-before)
	}
	for i := 0; i < 20; i++ {
		if f := w.remoteFile(fmt.Sprintf("app-%02d.yaml", i)); !strings.Contains(f, "fluxcd.io/automated") {
			t.Errorf("app-%02d lost its edit:\n%s", i, f)
		}
	}

	// After a restart the job's status comes from its note.
	d.stop()
	d2 := startFluxd(t, "second", args...)
	cl2, _ := client.New(d2.url, "", nil)
	waitFor(t, syncWait, "the restarted fluxd to answer", func() (bool, string) {
		st, err := cl2.JobStatus(ctx, ids[19])
		if err != nil {
			return false, err.Error()
		}
		return st.StatusString == api.JobSucceeded && st.Result.Revision != "" && len(st.Result.Result) == 1, fmt.Sprintf("%+v", st)
	})
}
