package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/fluxd/fluxd/e2e/harness"
	"github.com/fluxd/fluxd/server/api"
)

// imagesBase is when the images the tests push were built: each tag gets
// base plus some hours, so the order by creation time is known.
var imagesBase = time.Date(2024, 3, 1, 8, 0, 0, 0, time.UTC)

// pushImage pushes a small random image built at created as
// <registry>/<repo>:<tag>, straight to the registry.
func pushImage(t *testing.T, repo, tag string, created time.Time) {
	t.Helper()
	img, err := random.Image(128, 1)
	if err != nil {
		t.Fatal(err)
	}
	if img, err = mutate.CreatedAt(img, v1.Time{Time: created}); err != nil {
		t.Fatal(err)
	}
	ref, err := name.NewTag(env.Registry.Host+"/"+repo+":"+tag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := remote.Write(ref, img, remote.WithContext(ctx)); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
}

// listImages runs fluxctl list-images -o json.
func listImages(t *testing.T, d *daemon, args ...string) ([]api.ImageStatus, string) {
	t.Helper()
	out, stderr, code := fluxctl(t, d, "", append([]string{"list-images", "-o", "json"}, args...)...)
	if code != 0 {
		return nil, stderr
	}
	var res []api.ImageStatus
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("list-images -o json: %v\n%s", err, out)
	}
	return res, out
}

// containerOf returns a workload's only container from a listing.
func containerOf(res []api.ImageStatus, workload string) (api.Container, bool) {
	for _, w := range res {
		if w.ID.Name == workload && len(w.Containers) == 1 {
			return w.Containers[0], true
		}
	}
	return api.Container{}, false
}

func tagsOf(infos []api.Info) []string {
	out := make([]string, len(infos))
	for i, info := range infos {
		out[i] = info.ID.Tag()
	}
	return out
}

func describe(c api.Container) string {
	return fmt.Sprintf("available %v, latest filtered %q, counts %d/%d/%d/%d, error %q", tagsOf(c.Available), c.LatestFiltered.ID,
		c.AvailableImagesCount, c.NewAvailableImagesCount, c.FilteredImagesCount, c.NewFilteredImagesCount, c.AvailableError)
}

// notifyImage tells fluxd that an image repository was pushed to, as a
// registry webhook relay (or Flux v1's fluxcloud) would.
func notifyImage(t *testing.T, d *daemon, domain, image string) {
	t.Helper()
	body := fmt.Sprintf(`{"Kind":"image","Source":{"Name":{"Domain":%q,"Image":%q}}}`, domain, image)
	resp, err := http.Post(d.url+"/v11/notify", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("notify: %s", resp.Status)
	}
}

// The listing order of each kind of tag filter, against the registry: semver
// by version, glob and regexp by creation time, the running tag marked and
// counted; a repository the registry does not have says why it has no
// images; a tag pushed later shows up by itself.
func TestImagesListingPerFilter(t *testing.T) {
	t.Parallel()
	ns, w := testName(t), newWorkRepo(t)
	reg := env.Registry.Host
	at := func(h int) time.Time { return imagesBase.Add(time.Duration(h) * time.Hour) }
	for tag, h := range map[string]int{"1.2.0": 1, "1.2.10": 2, "1.3.0": 3, "1.2.9": 4, "latest": 5, "feature-x": 6} {
		pushImage(t, ns+"/semver", tag, at(h))
	}
	for tag, h := range map[string]int{"v1.0": 1, "v1.2": 2, "v1.1": 3, "v2.0": 4} {
		pushImage(t, ns+"/glob", tag, at(h))
	}
	for tag, h := range map[string]int{"build-7": 1, "build-9": 2, "build-10": 3, "dev-11": 4} {
		pushImage(t, ns+"/regex", tag, at(h))
	}
	c1 := w.commit("workloads", map[string]string{
		"ns.yaml":     namespaceYAML(ns),
		"semver.yaml": deploymentYAML(ns, "semver", reg+"/"+ns+"/semver:1.2.9", 0, "fluxcd.io/tag.semver", "semver:~1.2"),
		"glob.yaml":   deploymentYAML(ns, "glob", reg+"/"+ns+"/glob:v1.2", 0, "fluxcd.io/tag.glob", "glob:v1.*"),
		"regex.yaml":  deploymentYAML(ns, "regex", reg+"/"+ns+"/regex:build-9", 0, "filter.fluxcd.io/regex", "regex:^build-[0-9]+$"),
		"gone.yaml":   deploymentYAML(ns, "gone", reg+"/"+ns+"/gone:1.0", 0),
	})
	start := time.Now()
	d := startFluxd(t, "fluxd", fluxdArgs(w, ns, "--registry-insecure-host", reg,
		"--registry-poll-interval", "1s", "--registry-poll-max-interval", "2s")...)
	waitTag(t, w, ns, c1)

	want := map[string]struct {
		available []string
		latest    string
		counts    [4]int // available, new available, filtered, new filtered
	}{
		// semver: by version, highest first; tags that are not versions after.
		"semver": {[]string{"1.3.0", "1.2.10", "1.2.9", "1.2.0", "feature-x", "latest"}, "1.2.10", [4]int{6, 2, 3, 1}},
		// glob and regexp: by creation time, newest first.
		"glob":  {[]string{"v2.0", "v1.1", "v1.2", "v1.0"}, "v1.1", [4]int{4, 2, 3, 1}},
		"regex": {[]string{"dev-11", "build-10", "build-9", "build-7"}, "build-10", [4]int{4, 2, 3, 1}},
	}
	var res []api.ImageStatus
	waitFor(t, syncWait, "the images of every workload, filtered", func() (bool, string) {
		var out string
		res, out = listImages(t, d, "-n", ns)
		for wl, wt := range want {
			c, ok := containerOf(res, wl)
			if !ok || c.FilteredImagesCount != wt.counts[2] || len(c.Available) != wt.counts[0] {
				return false, out
			}
		}
		gone, ok := containerOf(res, "gone")
		return ok && strings.Contains(gone.AvailableError, "last attempt failed"), out
	})
	t.Logf("every repository listed %s after fluxd started", time.Since(start).Round(time.Millisecond))
	for wl, wt := range want {
		c, _ := containerOf(res, wl)
		counts := [4]int{c.AvailableImagesCount, c.NewAvailableImagesCount, c.FilteredImagesCount, c.NewFilteredImagesCount}
		if !slices.Equal(tagsOf(c.Available), wt.available) || c.LatestFiltered.ID.Tag() != wt.latest || counts != wt.counts || c.AvailableError != "" {
			t.Errorf("%s: %s; want available %v, latest %s, counts %v", wl, describe(c), wt.available, wt.latest, wt.counts)
		}
		if c.Current.CreatedAt.IsZero() || !strings.HasPrefix(c.Current.Digest, "sha256:") {
			t.Errorf("%s: the running image is not described: %+v", wl, c.Current)
		}
		for i, info := range c.Available {
			if info.CreatedAt.IsZero() || info.Digest == "" || !strings.HasPrefix(string(info.ID), reg+"/"+ns+"/"+wl+":") {
				t.Errorf("%s: image %d: %+v", wl, i, info)
			}
		}
	}
	gone, _ := containerOf(res, "gone")
	if len(gone.Available) != 0 || !strings.Contains(gone.AvailableError, "not been scanned") || !strings.Contains(gone.AvailableError, "not found") {
		t.Errorf("a repository the registry does not have: %s", describe(gone))
	}

	// The table: the running tag marked, rejected tags marked, the reason
	// of a repository without images.
	out, stderr, code := fluxctl(t, d, "", "list-images", "-n", ns)
	if code != 0 {
		t.Fatalf("list-images: %s", stderr)
	}
	t.Logf("fluxctl list-images -n %s:\n%s", ns, out)
	for _, line := range []string{"WORKLOAD", ns + ":deployment/semver", "'-> 1.2.9", "|   1.3.0 (filtered out)", "|   1.2.10  ", "latest (filtered out)",
		"(filter regexp:^build-[0-9]+$)", "|   dev-11 (filtered out)", "01 Mar 24 12:00 UTC", "image data not available yet: the repository has not been scanned"} {
		if !strings.Contains(out, line) {
			t.Errorf("the table lacks %q:\n%s", line, out)
		}
	}
	// One workload, kind/name in -n, and --limit.
	out, _, _ = fluxctl(t, d, "", "list-images", "-n", ns, "-w", "deployment/semver", "--limit", "1")
	if strings.Contains(out, "deployment/glob") || !strings.Contains(out, "|   1.3.0 (filtered out)") || !strings.Contains(out, "(1 image(s) omitted)") ||
		!strings.Contains(out, "'-> 1.2.9") || !strings.Contains(out, "(3 more image(s); --limit 0 shows all)") || strings.Contains(out, "1.2.10") {
		t.Errorf("list-images -w deployment/semver --limit 1:\n%s", out)
	}
	if one, _ := listImages(t, d, "-w", ns+":deployment/glob", "--limit", "2"); len(one) != 1 || len(one[0].Containers) != 1 || len(one[0].Containers[0].Available) != 2 {
		t.Errorf("list-images -w <id> --limit 2 -o json: %+v", one)
	}

	// A new tag: found by the next scan (--registry-poll-max-interval 2s).
	pushImage(t, ns+"/semver", "1.2.11", at(7))
	pushed := time.Now()
	waitFor(t, 30*time.Second, "the new tag 1.2.11", func() (bool, string) {
		res, out := listImages(t, d, "-n", ns, "-w", "deployment/semver")
		c, ok := containerOf(res, "semver")
		return ok && c.LatestFiltered.ID.Tag() == "1.2.11" && c.NewFilteredImagesCount == 2 && c.AvailableImagesCount == 7, out
	})
	t.Logf("a pushed tag listed %s after the push", time.Since(pushed).Round(time.Millisecond))
}

// memcachedAt runs memcached on a given port, so that the test can kill it
// and start it again where fluxd looks for it.
type memcachedAt struct {
	t    *testing.T
	dir  string
	addr string
	proc *harness.Process
}

func startMemcachedAt(t *testing.T, dir string, port int) *memcachedAt {
	t.Helper()
	m := &memcachedAt{t: t, dir: dir, addr: "127.0.0.1:" + strconv.Itoa(port)}
	m.start()
	t.Cleanup(func() { m.stop() })
	return m
}

func (m *memcachedAt) start() {
	m.t.Helper()
	bin, err := harness.LookBin("memcached")
	if err != nil {
		m.t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(m.addr)
	args := []string{"-l", "127.0.0.1", "-p", port, "-U", "0", "-m", "64"}
	if u, err := user.Current(); err == nil && u.Uid == "0" {
		args = append(args, "-u", "root")
	}
	// The port was in use a moment ago: try for a while.
	for i := 0; ; i++ {
		p, err := harness.StartProcess(m.dir, "memcached", bin, args...)
		if err != nil {
			m.t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = harness.WaitTCP(ctx, p, m.addr, 10*time.Second)
		cancel()
		if err == nil {
			m.proc = p
			return
		}
		p.Stop(time.Second)
		if i == 20 {
			m.t.Fatalf("memcached on %s: %v", m.addr, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func (m *memcachedAt) stop() {
	if m.proc != nil {
		m.proc.Stop(5 * time.Second)
		m.proc = nil
	}
}

// items is memcached's count of items it holds.
func (m *memcachedAt) items() int {
	m.t.Helper()
	c, err := net.DialTimeout("tcp", m.addr, 2*time.Second)
	if err != nil {
		return -1
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("stats\r\n")); err != nil {
		return -1
	}
	sc := bufio.NewScanner(c)
	n := -1
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "STAT curr_items "); ok {
			n, _ = strconv.Atoi(v)
		}
		if line == "END" {
			break
		}
	}
	return n
}

// New tags come in on a notification; memcached killed and started again
// (empty) costs nothing but a warning; and a new fluxd with memcached warm
// answers list-images at once, from the cache, with the registry out of
// reach.
func TestImagesNotifyMemcachedRestart(t *testing.T) {
	t.Parallel()
	ns, w := testName(t), newWorkRepo(t)
	// fluxd reaches the registry through a proxy the test cuts at the end;
	// the test pushes to the registry itself.
	proxy, err := harness.StartProxy(env.Registry.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Stop)
	port, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	mc := startMemcachedAt(t, t.TempDir(), port)

	repo := ns + "/app"
	at := func(h int) time.Time { return imagesBase.Add(time.Duration(h) * time.Hour) }
	pushImage(t, repo, "1.0.0", at(1))
	pushImage(t, repo, "1.1.0", at(2))
	c1 := w.commit("workloads", map[string]string{
		"app.yaml": namespaceYAML(ns) + "---\n" + deploymentYAML(ns, "app", proxy.Addr+"/"+repo+":1.0.0", 0),
	})
	// Scans only when told to: the first, then on notifications.
	args := fluxdArgs(w, ns, "--memcached", mc.addr, "--registry-insecure-host", proxy.Addr,
		"--registry-poll-interval", "1h", "--registry-poll-max-interval", "1h")
	d := startFluxd(t, "fluxd", args...)
	waitTag(t, w, ns, c1)

	waitTags := func(what string, timeout time.Duration, want ...string) {
		t.Helper()
		waitFor(t, timeout, what, func() (bool, string) {
			res, out := listImages(t, d, "-n", ns, "--limit", "0")
			c, ok := containerOf(res, "app")
			return ok && slices.Equal(tagsOf(c.Available), want), out
		})
	}
	waitTags("the first scan", syncWait, "1.1.0", "1.0.0")
	if n := mc.items(); n < 1 {
		t.Fatalf("memcached holds %d items after the first scan", n)
	}

	pushImage(t, repo, "1.2.0", at(3))
	start := time.Now()
	notifyImage(t, d, proxy.Addr, repo)
	waitTags("1.2.0 after a notification", 20*time.Second, "1.2.0", "1.1.0", "1.0.0")
	t.Logf("a notified push listed after %s", time.Since(start).Round(time.Millisecond))

	// memcached dies: fluxd goes on with its embedded cache.
	mc.stop()
	pushImage(t, repo, "1.3.0", at(4))
	notifyImage(t, d, proxy.Addr, repo)
	waitTags("1.3.0 with memcached down", 20*time.Second, "1.3.0", "1.2.0", "1.1.0", "1.0.0")

	// memcached is back, empty: fluxd uses it again (after its probe) and
	// fills it from the embedded cache, without asking the registry for
	// what it knows.
	mc.start()
	if n := mc.items(); n != 0 {
		t.Fatalf("a new memcached holds %d items", n)
	}
	waitFor(t, 45*time.Second, "fluxd to fill memcached again", func() (bool, string) {
		notifyImage(t, d, proxy.Addr, repo) // a scan reads and writes the cache
		time.Sleep(500 * time.Millisecond)
		n := mc.items()
		return n >= 1, fmt.Sprintf("%d items", n)
	})
	waitTags("the same images after memcached restarted", 10*time.Second, "1.3.0", "1.2.0", "1.1.0", "1.0.0")

	// A new fluxd, with the registry out of reach: list-images answers from
	// memcached as soon as fluxd serves.
	d.stop()
	proxy.Cut()
	start = time.Now()
	d2 := startFluxd(t, "fluxd-2", args...)
	var first api.Container
	waitFor(t, syncWait, "the new fluxd to list the workload", func() (bool, string) {
		res, out := listImages(t, d2, "-n", ns, "--limit", "0")
		c, ok := containerOf(res, "app")
		first = c
		return ok, out
	})
	t.Logf("the restarted fluxd listed the workload %s after it started", time.Since(start).Round(time.Millisecond))
	if got := tagsOf(first.Available); !slices.Equal(got, []string{"1.3.0", "1.2.0", "1.1.0", "1.0.0"}) || first.NewAvailableImagesCount != 3 || first.Current.CreatedAt.IsZero() {
		t.Errorf("the first answer of the restarted fluxd: %s", describe(first))
	}
	t.Logf("the restarted fluxd's first answer: %s", describe(first))
	if strings.Contains(first.AvailableError, "not been scanned") {
		t.Errorf("the restarted fluxd did not answer from memcached: %q", first.AvailableError)
	}
	if err := proxy.Restore(); err != nil {
		t.Fatal(err)
	}
}
