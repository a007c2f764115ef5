package main

// The image scanner benchmark: 200 repositories of 100 tags each in the
// real distribution registry on loopback, scanned by a fluxd of its own
// whose 1,000 workloads use them. Between fluxd and the registry sits a
// counting reverse proxy, so the registry requests are counted as the
// registry sees them, not as fluxd reports them.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/fluxd/fluxd/e2e/harness"
	"github.com/fluxd/fluxd/server/api"
)

// imagesConfig is the size of the image benchmark and the rate fluxd may
// send requests to the registry at.
type imagesConfig struct {
	repos int     // image repositories
	tags  int     // tags per repository, each its own image
	rps   float64 // --registry-rps; low enough that it binds
}

// The image benchmark's fixed parts.
const (
	imageWorkloadsPerRepo = 5  // 1,000 workloads for 200 repositories
	imageNamespaces       = 20 // the workloads are spread over img-00 ... img-19
	imageBurst            = 10 // --registry-burst, fluxd's default
	// imageLatencyFor is how long each /v10/images run lasts, at least
	// imageLatencyMin requests.
	imageLatencyFor = 10 * time.Second
	imageLatencyMin = 20
	// imageClients is the light concurrency of the last /v10/images run.
	imageClients = 4
	// imageQuiet is how long the registry must see no request before a
	// warm refresh counts as over.
	imageQuiet = 3 * time.Second
)

// imagesBase is the creation time of the first tag; tag j of repository
// i is built j hours and i minutes later, so every tag is its own image
// (its own config, so its own manifest digest) and tags order by time.
var imagesBase = time.Date(2025, 1, 6, 8, 0, 0, 0, time.UTC)

// imagesResult is what the image benchmark measured.
type imagesResult struct {
	cfg       imagesConfig
	setup     time.Duration // pushing the images, untimed in the results
	workloads int

	// Cold scan: from the first request fluxd sent the registry to the
	// status saying every repository is scanned.
	cold         time.Duration
	coldFromProc time.Duration // from fluxd's start
	coldReqs     requestCounts
	coldErrors   int           // answers other than 2xx during the cold scan
	coldCPU      time.Duration // fluxd's CPU time from its start to the end of the cold scan
	coldRSS      int64         // fluxd's peak RSS by then, KiB

	// Warm refresh: every repository made due (notify API), unchanged.
	warmReqs    requestCounts
	warmPerRepo []int // requests per repository, sorted
	warmTook    time.Duration

	// GET /v10/images for every workload, with the cache warm.
	firstList  time.Duration // the first call after the scan
	firstRSS   int64         // fluxd's peak RSS after it, KiB
	listBytes  int
	sequential listRun
	concurrent listRun
	// light is the same listing without the Available lists
	// (containerFields), one client: what fluxd's listing costs without
	// encoding 100 images per container.
	light      listRun
	lightBytes int
}

// listRun is one run of GET /v10/images, and fluxd's peak RSS after it.
type listRun struct {
	loadRun
	rss int64 // KiB
}

// benchImages pushes the images, starts a fluxd of its own for the 1,000
// workloads that use them, and measures the cold scan, a warm refresh and
// /v10/images.
func benchImages(ctx context.Context, env *harness.Env, dir, bin string, cfg imagesConfig) (imagesResult, error) {
	r := imagesResult{cfg: cfg}
	if err := clearBenchNamespaces(ctx, env); err != nil {
		return r, err
	}
	// A registry of its own, with its storage in memory: on disk, the
	// registry's file system work makes pushing 20,000 tags take minutes.
	regDir, err := os.MkdirTemp(memoryDir(), "fluxd-bench-registry-")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(regDir)
	reg, err := harness.StartRegistry(ctx, regDir)
	if err != nil {
		return r, err
	}
	defer reg.Stop()
	logf("images: pushing %d repositories of %d tags", cfg.repos, cfg.tags)
	start := time.Now()
	if err := pushImages(ctx, reg.Host, cfg.repos, cfg.tags); err != nil {
		return r, err
	}
	r.setup = time.Since(start)
	logf("images: pushed %d tags in %.1f s", cfg.repos*cfg.tags, r.setup.Seconds())

	proxy, err := startCountingProxy(reg.Host)
	if err != nil {
		return r, err
	}
	defer proxy.Close()

	remoteRepo, err := pushImageWorkloads(ctx, env, dir, proxy.Host, cfg)
	if err != nil {
		return r, err
	}
	port, err := harness.FreePort()
	if err != nil {
		return r, err
	}
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	base := "http://" + listen + "/api/flux"
	fdir := filepath.Join(dir, "fluxd-images")
	if err := os.MkdirAll(fdir, 0o755); err != nil {
		return r, err
	}
	procStart := time.Now()
	p, err := harness.StartProcess(fdir, "fluxd", bin, append(fluxdArgs(env, remoteRepo.SSHURL, "bench-images", listen),
		"--memcached", env.Memcached.Addr,
		"--registry-insecure-host", proxy.Host,
		"--registry-rps", fmt.Sprint(cfg.rps),
		"--registry-burst", fmt.Sprint(imageBurst),
		// Long intervals: no refresh comes by itself during the run, so
		// the cold scan is all first scans and the warm refresh is the
		// one the benchmark asks for.
		"--registry-poll-interval", "1h",
		"--registry-poll-max-interval", "2h",
	)...)
	if err != nil {
		return r, err
	}
	defer p.Stop(10 * time.Second)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: imageClients}}

	// Cold scan. The requests expected (per repository a version check
	// and a tag list, per tag its manifest and config) only bound the
	// wait; the report counts the real ones.
	expected := time.Duration(float64(cfg.repos*(2+2*cfg.tags)) / cfg.rps * float64(time.Second))
	logf("images: cold scan at %g requests/s, about %.0f s", cfg.rps, expected.Seconds())
	if err := waitScanned(ctx, hc, base, p, cfg.repos, 3*expected+3*time.Minute); err != nil {
		return r, err
	}
	done := time.Now()
	r.coldCPU, r.coldRSS = procCPU(p.Pid()), peakRSS(p.Pid())
	snap := proxy.snapshot()
	r.cold, r.coldFromProc = done.Sub(snap.first), done.Sub(procStart)
	r.coldReqs, r.coldErrors = snap.counts, snap.failed
	if n := len(snap.counts.byRepo); n != cfg.repos {
		return r, fmt.Errorf("the registry saw requests for %d repositories, want %d", n, cfg.repos)
	}

	// Warm refresh of every repository, none of them changed.
	logf("images: warm refresh of %d repositories", cfg.repos)
	r.warmReqs, r.warmPerRepo, r.warmTook, err = warmRefresh(ctx, hc, base, proxy, cfg)
	if err != nil {
		return r, err
	}
	if err := waitScanned(ctx, hc, base, p, cfg.repos, time.Minute); err != nil {
		return r, err
	}

	// GET /v10/images for every workload.
	logf("images: GET /v10/images, %d workloads", cfg.repos*imageWorkloadsPerRepo)
	if err := r.listLatency(ctx, hc, base, func() int64 { return peakRSS(p.Pid()) }); err != nil {
		return r, err
	}
	return r, nil
}

// clearBenchNamespaces deletes the namespaces the sync benchmark left (its
// 1,200 Deployments), so that "every workload" is the image benchmark's
// 1,000, and waits until they are gone.
func clearBenchNamespaces(ctx context.Context, env *harness.Env) error {
	cs, err := kubernetes.NewForConfig(env.Kube.RESTConfig())
	if err != nil {
		return err
	}
	ours := func(ns string) bool {
		for _, p := range []string{"kcs-", "kss-", "flx-"} {
			if strings.HasPrefix(ns, p) {
				return true
			}
		}
		return false
	}
	list, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list namespaces: %w", err)
	}
	var left []string
	for _, ns := range list.Items {
		if !ours(ns.Name) {
			continue
		}
		left = append(left, ns.Name)
		if err := cs.CoreV1().Namespaces().Delete(ctx, ns.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete namespace %s: %w", ns.Name, err)
		}
	}
	if len(left) == 0 {
		return nil
	}
	logf("images: deleting the %d namespaces of the sync benchmark", len(left))
	for deadline := time.Now().Add(10 * time.Minute); ; time.Sleep(time.Second) {
		list, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
		if err != nil {
			return fmt.Errorf("list namespaces: %w", err)
		}
		n := 0
		for _, ns := range list.Items {
			if ours(ns.Name) {
				n++
			}
		}
		if n == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d namespaces of the sync benchmark still there after 10m", n)
		}
	}
}

// imageRepo is the name of the i-th repository in the registry.
func imageRepo(i int) string { return fmt.Sprintf("bench/img-%03d", i) }

// imageTag is the j-th tag of a repository.
func imageTag(j int) string { return fmt.Sprintf("1.0.%d", j) }

// pushImages pushes repos repositories of tags tags straight to the
// registry. Each repository has a random layer of its own, and each tag
// its own config (its creation time), so no two tags share a manifest or
// config digest and the scanner must read every one. It speaks the
// distribution API itself (a blob upload is a POST and a PUT, a tag a
// manifest PUT), without the existence checks a general client makes:
// the registry's work per tag is what makes the setup slow.
func pushImages(ctx context.Context, registryHost string, repos, tags int) error {
	const parallel = 4 // repositories at once, each pushing pushJobs tags at once
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: parallel * pushJobs}}
	work := make(chan int)
	errs := make(chan error, parallel)
	var wg sync.WaitGroup
	for range parallel {
		wg.Go(func() {
			for i := range work {
				if err := pushRepo(ctx, hc, registryHost, i, tags); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	func() {
		defer close(work)
		for i := range repos {
			select {
			case work <- i:
			case <-ctx.Done():
				return
			case err := <-errs:
				errs <- err
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	return ctx.Err()
}

// pushJobs is how many tags of one repository are pushed at once.
const pushJobs = 8

func pushRepo(ctx context.Context, hc *http.Client, registryHost string, i, tags int) error {
	repo := imageRepo(i)
	base, err := random.Image(256, 1)
	if err != nil {
		return err
	}
	layers, err := base.Layers()
	if err != nil {
		return err
	}
	layerDigest, err := layers[0].Digest()
	if err != nil {
		return err
	}
	rc, err := layers[0].Compressed()
	if err != nil {
		return err
	}
	layer, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return err
	}
	if err := uploadBlob(ctx, hc, registryHost, repo, layerDigest.String(), layer); err != nil {
		return err
	}
	jobs := make(chan int)
	errs := make(chan error, pushJobs)
	var wg sync.WaitGroup
	for range pushJobs {
		wg.Go(func() {
			for j := range jobs {
				if err := pushTag(ctx, hc, registryHost, base, i, j); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	func() {
		defer close(jobs)
		for j := range tags {
			select {
			case jobs <- j:
			case err := <-errs:
				errs <- err
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	return <-errs
}

// pushTag pushes tag j of repository i: base with its own creation time.
func pushTag(ctx context.Context, hc *http.Client, registryHost string, base v1.Image, i, j int) error {
	img, err := mutate.CreatedAt(base, v1.Time{Time: imagesBase.Add(time.Duration(j)*time.Hour + time.Duration(i)*time.Minute)})
	if err != nil {
		return err
	}
	config, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	configDigest, err := img.ConfigName()
	if err != nil {
		return err
	}
	manifest, err := img.RawManifest()
	if err != nil {
		return err
	}
	mediaType, err := img.MediaType()
	if err != nil {
		return err
	}
	repo := imageRepo(i)
	if err := uploadBlob(ctx, hc, registryHost, repo, configDigest.String(), config); err != nil {
		return err
	}
	u := "http://" + registryHost + "/v2/" + repo + "/manifests/" + imageTag(j)
	return registryDo(ctx, hc, http.MethodPut, u, string(mediaType), manifest, http.StatusCreated, nil)
}

// uploadBlob uploads a blob in one piece: POST for an upload, PUT of the
// content with its digest.
func uploadBlob(ctx context.Context, hc *http.Client, registryHost, repo, digest string, content []byte) error {
	var loc string
	err := registryDo(ctx, hc, http.MethodPost, "http://"+registryHost+"/v2/"+repo+"/blobs/uploads/", "", nil, http.StatusAccepted, func(resp *http.Response) {
		loc = resp.Header.Get("Location")
	})
	if err != nil {
		return err
	}
	u, err := url.Parse(loc)
	if err != nil || loc == "" {
		return fmt.Errorf("upload of a blob to %s: the registry gave the location %q", repo, loc)
	}
	u = (&url.URL{Scheme: "http", Host: registryHost}).ResolveReference(u)
	q := u.Query()
	q.Set("digest", digest)
	u.RawQuery = q.Encode()
	return registryDo(ctx, hc, http.MethodPut, u.String(), "application/octet-stream", content, http.StatusCreated, nil)
}

// registryDo sends one request to the registry and checks its status.
func registryDo(ctx context.Context, hc *http.Client, method, u, contentType string, body []byte, want int, read func(*http.Response)) error {
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %s: %.300s", method, u, resp.Status, b)
	}
	if read != nil {
		read(resp)
	}
	return nil
}

// pushImageWorkloads commits the workloads to a repo of the git server:
// imageNamespaces namespaces, and 5 Deployments per image repository
// (spread over the namespaces), their images named through the proxy.
// Every other one has a semver tag filter, as automated workloads do.
func pushImageWorkloads(ctx context.Context, env *harness.Env, dir, registryHost string, cfg imagesConfig) (*harness.GitRepo, error) {
	root := filepath.Join(dir, "images-repo")
	write := func(p, s string) error {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		return os.WriteFile(p, []byte(s), 0o644)
	}
	for n := range imageNamespaces {
		ns := fmt.Sprintf("img-%02d", n)
		if err := write(filepath.Join(root, ns, "namespace.yaml"), fmt.Sprintf("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n", ns)); err != nil {
			return nil, err
		}
	}
	for w := range cfg.repos * imageWorkloadsPerRepo {
		ns := fmt.Sprintf("img-%02d", w%imageNamespaces)
		repo, tag := w%cfg.repos, (w*7)%cfg.tags
		ref := registryHost + "/" + imageRepo(repo) + ":" + imageTag(tag)
		if err := write(filepath.Join(root, ns, fmt.Sprintf("app-%04d.yaml", w)), imageDeployment(ns, w, ref, w%2 == 1)); err != nil {
			return nil, err
		}
	}
	remoteRepo, err := env.Git.NewRepo("bench-images", "main")
	if err != nil {
		return nil, err
	}
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "."}, {"commit", "-q", "-m", "1,000 workloads"}, {"push", "-q", remoteRepo.SSHURL, "main"}} {
		cmd := exec.CommandContext(ctx, "git", append([]string{"-c", "user.name=Bench", "-c", "user.email=bench@example.com"}, args...)...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), env.Git.GitEnv()...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return remoteRepo, nil
}

// imageDeployment is a Deployment of no replicas (nothing runs; the
// workload is what matters) whose one container runs image.
func imageDeployment(ns string, i int, image string, semverFilter bool) string {
	annotations := ""
	if semverFilter {
		annotations = "  annotations:\n    fluxcd.io/tag.app: semver:~1.0\n"
	}
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-%04[2]d
  namespace: %[1]s
%[4]s  labels:
    app: app-%04[2]d
spec:
  replicas: 0
  selector:
    matchLabels:
      app: app-%04[2]d
  template:
    metadata:
      labels:
        app: app-%04[2]d
    spec:
      containers:
        - name: app
          image: %[3]s
`, ns, i, image, annotations)
}

// waitScanned polls /v12/status until the scanner watches repos
// repositories and has scanned them all, with no scan error.
func waitScanned(ctx context.Context, hc *http.Client, base string, p *harness.Process, repos int, timeout time.Duration) error {
	var last api.RegistryStatus
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); {
		var st api.Status
		if err := getJSON(ctx, hc, base+"/v12/status", &st); err == nil && st.Registry != nil {
			last = *st.Registry
			if len(last.RepoErrors) > 0 {
				return fmt.Errorf("the scan of %s failed: %s", last.RepoErrors[0].Repo, last.RepoErrors[0].Error)
			}
			if last.ReposKnown == repos && last.ReposScanned == repos {
				return nil
			}
		}
		if done, err := p.Exited(); done {
			return fmt.Errorf("fluxd exited (%v):\n%s", err, p.Tail(3000))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("after %s fluxd watches %d repositories and has scanned %d, want %d:\n%s",
		timeout, last.ReposKnown, last.ReposScanned, repos, p.Tail(3000))
}

// warmRefresh tells fluxd that every repository was pushed to (POST
// /v11/notify, as a registry webhook would), which makes each due at once,
// and counts the requests the registry then sees, per repository. The
// refresh is over once every repository had a request and the registry
// has seen none for imageQuiet.
func warmRefresh(ctx context.Context, hc *http.Client, base string, proxy *countingProxy, cfg imagesConfig) (requestCounts, []int, time.Duration, error) {
	before := proxy.snapshot()
	start := time.Now()
	for i := range cfg.repos {
		body := fmt.Sprintf(`{"Kind":"image","Source":{"Name":{"Domain":%q,"Image":%q}}}`, proxy.Host, imageRepo(i))
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v11/notify", strings.NewReader(body))
		if err != nil {
			return requestCounts{}, nil, 0, err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			return requestCounts{}, nil, 0, err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			return requestCounts{}, nil, 0, fmt.Errorf("POST /v11/notify for %s: %s: %s", imageRepo(i), resp.Status, b)
		}
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		snap := proxy.snapshot()
		delta := snap.counts.minus(before.counts)
		all := len(delta.byRepo) == cfg.repos
		if all && time.Since(snap.last) >= imageQuiet {
			per := make([]int, 0, cfg.repos)
			for _, c := range delta.byRepo {
				per = append(per, c.total())
			}
			sort.Ints(per)
			return delta, per, snap.last.Sub(start), nil
		}
		if time.Now().After(deadline) {
			return delta, nil, 0, fmt.Errorf("2m after the notifications, the registry saw requests for %d of %d repositories", len(delta.byRepo), cfg.repos)
		}
		select {
		case <-ctx.Done():
			return delta, nil, 0, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// listLatency times GET /v10/images for every workload in every
// namespace: once right after the scan, with the query fluxctl list-images
// sends; then, one request after another for imageLatencyFor, without the
// Available lists; then with them, as fluxctl asks; then that with
// imageClients at once. rss reads fluxd's peak RSS after each run.
func (r *imagesResult) listLatency(ctx context.Context, hc *http.Client, base string, rss func() int64) error {
	q := url.Values{"containerFields": {""}, "namespace": {""}, "service": {"<all>"}}
	u := base + "/v10/images?" + q.Encode()
	get := func(u string, check bool) (int, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return 0, err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK || check {
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				return 0, err
			}
			if resp.StatusCode != http.StatusOK {
				return 0, fmt.Errorf("GET /v10/images: %s: %.300s", resp.Status, b)
			}
			return len(b), r.checkImages(b)
		}
		// The whole answer is read, into no buffer: the client's own
		// allocations are not what is measured.
		n, err := io.Copy(io.Discard, resp.Body)
		return int(n), err
	}
	t := time.Now()
	n, err := get(u, true)
	if err != nil {
		return err
	}
	r.firstList, r.listBytes = time.Since(t), n
	r.firstRSS = rss()
	q.Set("containerFields", "Name,Current,LatestFiltered,AvailableError,AvailableImagesCount,NewAvailableImagesCount,FilteredImagesCount,NewFilteredImagesCount")
	light := base + "/v10/images?" + q.Encode()
	if r.lightBytes, err = get(light, false); err != nil {
		return err
	}
	if r.light.loadRun, err = timeRequests(func() error { _, err := get(light, false); return err }, 1); err != nil {
		return err
	}
	r.light.rss = rss()
	if r.sequential.loadRun, err = timeRequests(func() error { _, err := get(u, false); return err }, 1); err != nil {
		return err
	}
	r.sequential.rss = rss()
	if r.concurrent.loadRun, err = timeRequests(func() error { _, err := get(u, false); return err }, imageClients); err != nil {
		return err
	}
	r.concurrent.rss = rss()
	return nil
}

// checkImages checks that the answer lists every workload, each with all
// the tags of its repository and no error.
func (r *imagesResult) checkImages(body []byte) error {
	var res []api.ImageStatus
	if err := json.Unmarshal(body, &res); err != nil {
		return fmt.Errorf("GET /v10/images: %w", err)
	}
	want := r.cfg.repos * imageWorkloadsPerRepo
	if r.workloads = len(res); len(res) != want {
		return fmt.Errorf("GET /v10/images lists %d workloads, want %d", len(res), want)
	}
	for _, w := range res {
		if len(w.Containers) != 1 {
			return fmt.Errorf("GET /v10/images: %s has %d containers, want 1", w.ID, len(w.Containers))
		}
		c := w.Containers[0]
		if c.AvailableImagesCount != r.cfg.tags || c.AvailableError != "" {
			return fmt.Errorf("GET /v10/images: %s lists %d images (want %d), error %q", w.ID, c.AvailableImagesCount, r.cfg.tags, c.AvailableError)
		}
	}
	return nil
}

// timeRequests runs clients clients, each sending its next request as soon
// as the last is answered, for imageLatencyFor and at least
// imageLatencyMin requests in all.
func timeRequests(do func() error, clients int) (loadRun, error) {
	var (
		mu   sync.Mutex
		lats []time.Duration
		wg   sync.WaitGroup
		errs = make(chan error, clients)
	)
	start := time.Now()
	enough := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return time.Since(start) >= imageLatencyFor && len(lats) >= imageLatencyMin
	}
	for range clients {
		wg.Go(func() {
			for !enough() {
				t := time.Now()
				if err := do(); err != nil {
					errs <- err
					return
				}
				d := time.Since(t)
				mu.Lock()
				lats = append(lats, d)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	r := loadRun{took: time.Since(start)}
	close(errs)
	if err := <-errs; err != nil {
		return r, err
	}
	slices.Sort(lats)
	r.requests = len(lats)
	r.p50, r.p99 = lats[len(lats)/2], lats[min(len(lats)-1, len(lats)*99/100)]
	return r, nil
}

// memoryDir is a directory in memory (/dev/shm) when there is one, else
// the temporary directory.
func memoryDir() string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if f, err := os.CreateTemp("/dev/shm", "fluxd-bench-probe-"); err == nil {
			f.Close()
			os.Remove(f.Name())
			return "/dev/shm"
		}
	}
	return os.TempDir()
}

// procCPU is the CPU time (user and system) a process has used.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The fields after the command name, which is in parentheses and may
	// hold spaces: state is the first; utime and stime the 12th and 13th.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	var user, sys int64
	fmt.Sscan(f[11], &user)
	fmt.Sscan(f[12], &sys)
	return time.Duration(user+sys) * time.Second / clockTicks
}

// clockTicks is the kernel's USER_HZ, the unit of /proc/<pid>/stat's times:
// 100 on every Linux platform Go supports.
const clockTicks = 100

func getJSON(ctx context.Context, hc *http.Client, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("GET %s: %s: %.300s", u, resp.Status, b)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// repoCounts are the requests for one repository, by kind.
type repoCounts struct {
	pings, lists, manifests, blobs, other int
}

func (c repoCounts) total() int { return c.pings + c.lists + c.manifests + c.blobs + c.other }

func (c repoCounts) minus(o repoCounts) repoCounts {
	return repoCounts{c.pings - o.pings, c.lists - o.lists, c.manifests - o.manifests, c.blobs - o.blobs, c.other - o.other}
}

func (c *repoCounts) add(o repoCounts) {
	c.pings += o.pings
	c.lists += o.lists
	c.manifests += o.manifests
	c.blobs += o.blobs
	c.other += o.other
}

// requestCounts are the registry requests by repository ("" for the
// version check, GET /v2/, which names none).
type requestCounts struct {
	byRepo map[string]repoCounts
	ping   int
}

func (c requestCounts) sum() repoCounts {
	s := repoCounts{pings: c.ping}
	for _, rc := range c.byRepo {
		s.add(rc)
	}
	return s
}

// minus is c less an earlier snapshot o; repositories without a request
// since are left out.
func (c requestCounts) minus(o requestCounts) requestCounts {
	out := requestCounts{byRepo: map[string]repoCounts{}, ping: c.ping - o.ping}
	for repo, rc := range c.byRepo {
		if d := rc.minus(o.byRepo[repo]); d.total() > 0 {
			out.byRepo[repo] = d
		}
	}
	return out
}

// countingProxy is a reverse proxy on a loopback port in front of the
// registry that counts the requests it forwards.
type countingProxy struct {
	Host string // 127.0.0.1:<port>
	srv  *http.Server

	mu     sync.Mutex
	counts requestCounts
	failed int // answers other than 2xx
	first  time.Time
	last   time.Time
}

type proxySnapshot struct {
	counts      requestCounts
	failed      int
	first, last time.Time
}

// registryPath splits a distribution API path into the repository and
// the kind of request.
var registryPath = regexp.MustCompile(`^/v2/(.+)/(tags|manifests|blobs)/`)

func startCountingProxy(registryHost string) (*countingProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	target := &url.URL{Scheme: "http", Host: registryHost}
	p := &countingProxy{Host: ln.Addr().String(), counts: requestCounts{byRepo: map[string]repoCounts{}}}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(target) },
		Transport: &http.Transport{
			MaxIdleConns:        256,
			MaxIdleConnsPerHost: 256,
			IdleConnTimeout:     time.Minute,
		},
		ModifyResponse: func(resp *http.Response) error {
			if resp.StatusCode/100 != 2 {
				p.mu.Lock()
				p.failed++
				p.mu.Unlock()
			}
			return nil
		},
	}
	p.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		p.count(req.URL.Path)
		rp.ServeHTTP(w, req)
	})}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

func (p *countingProxy) count(path string) {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.first.IsZero() {
		p.first = now
	}
	p.last = now
	m := registryPath.FindStringSubmatch(path)
	if m == nil {
		p.counts.ping++
		return
	}
	c := p.counts.byRepo[m[1]]
	switch m[2] {
	case "tags":
		c.lists++
	case "manifests":
		c.manifests++
	case "blobs":
		c.blobs++
	}
	p.counts.byRepo[m[1]] = c
}

func (p *countingProxy) snapshot() proxySnapshot {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := proxySnapshot{counts: requestCounts{byRepo: make(map[string]repoCounts, len(p.counts.byRepo)), ping: p.counts.ping},
		failed: p.failed, first: p.first, last: p.last}
	for k, v := range p.counts.byRepo {
		s.counts.byRepo[k] = v
	}
	return s
}

// Close stops the proxy.
func (p *countingProxy) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.srv.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		logf("images: stopping the proxy: %v", err)
	}
}

func (r imagesResult) render() string {
	var b strings.Builder
	host, _ := os.Hostname()
	cfg := r.cfg
	tags := cfg.repos * cfg.tags
	cold := r.coldReqs.sum()
	coldTotal := cold.total()
	ideal := time.Duration(float64(coldTotal) / cfg.rps * float64(time.Second))
	coldRatio := ratio(r.cold, ideal)
	naive := time.Duration(float64(tags) / cfg.rps * float64(time.Second))
	warm := r.warmReqs.sum()
	perRepo := float64(warm.total()) / float64(cfg.repos)
	maxPerRepo := 0
	if len(r.warmPerRepo) > 0 {
		maxPerRepo = r.warmPerRepo[len(r.warmPerRepo)-1]
	}

	fmt.Fprintf(&b, "\nImage scanning: %d repositories of %d tags (%s tags, each its own image with its own creation time) in the distribution registry on loopback (its storage in memory), behind a proxy that counts the requests; %s Deployments in %d namespaces, %d per repository, half of them with a semver tag filter; fluxd with --registry-rps %g --registry-burst %d and memcached. Pushing the images took %.0f s (not timed). %s, %d CPUs, %s/%s, %s, %s.\n\n",
		cfg.repos, cfg.tags, thousands(tags), thousands(r.workloads), imageNamespaces, imageWorkloadsPerRepo, cfg.rps, imageBurst, r.setup.Seconds(),
		host, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, cpuModel(), time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	b.WriteString("| measure | measured | ideal | note |\n|---|---|---|---|\n")
	fmt.Fprintf(&b, "| cold scan: first registry request to every repository scanned | %.1f s | %.1f s (%s requests at %g/s) | %.2fx the ideal; %.1f s from fluxd's start |\n",
		r.cold.Seconds(), ideal.Seconds(), thousands(coldTotal), cfg.rps, coldRatio, r.coldFromProc.Seconds())
	fmt.Fprintf(&b, "| registry requests, cold | %s: %s tag lists, %s manifests, %s blobs, %s version checks; %d answers not 2xx | %s: per repository a version check and a tag list, per tag its manifest and its config | %.2f requests per tag |\n",
		thousands(coldTotal), thousands(cold.lists), thousands(cold.manifests), thousands(cold.blobs), thousands(cold.pings), r.coldErrors,
		thousands(cfg.repos*(2+2*cfg.tags)), float64(coldTotal)/float64(tags))
	fmt.Fprintf(&b, "| warm refresh: requests per unchanged repository | %.2f (most %d; %d tag lists, %d manifests, %d blobs, %d version checks) | 1 | every repository made due by POST /v11/notify; all refreshed %.1f s later |\n",
		perRepo, maxPerRepo, warm.lists, warm.manifests, warm.blobs, warm.pings, r.warmTook.Seconds())
	fmt.Fprintf(&b, "| fluxd, start to the end of the cold scan: CPU time, peak RSS | %.1f s (%.2f ms per tag), %.0f MiB | – | includes the clone and first sync of %s objects |\n",
		r.coldCPU.Seconds(), float64(r.coldCPU.Microseconds())/1000/float64(tags), float64(r.coldRSS)/1024, thousands(r.workloads+imageNamespaces))

	fmt.Fprintf(&b, "\nGET /v10/images for all %s workloads in every namespace, the cache warm, one run after another; the peak RSS is fluxd's after each run:\n\n", thousands(r.workloads))
	b.WriteString("| query | clients | requests | p50 | p99 | answer | peak RSS |\n|---|---|---|---|---|---|---|\n")
	fmt.Fprintf(&b, "| as fluxctl list-images asks, the first call after the scan | 1 | 1 | %.0f ms | – | %.1f MiB | %.0f MiB |\n",
		ms(r.firstList), float64(r.listBytes)/(1<<20), float64(r.firstRSS)/1024)
	for _, run := range []struct {
		name    string
		clients int
		bytes   int
		run     listRun
	}{
		{"without the Available lists (containerFields)", 1, r.lightBytes, r.light},
		{fmt.Sprintf("as fluxctl list-images asks: every field, %d images per container", cfg.tags), 1, r.listBytes, r.sequential},
		{"the same", imageClients, r.listBytes, r.concurrent},
	} {
		fmt.Fprintf(&b, "| %s | %d | %d | %.0f ms | %.0f ms | %.1f MiB | %.0f MiB |\n",
			run.name, run.clients, run.run.requests, ms(run.run.p50), ms(run.run.p99), float64(run.bytes)/(1<<20), float64(run.run.rss)/1024)
	}
	fmt.Fprintf(&b, "\nTargets: a warm refresh costs one request per unchanged repository (%.2f: %s); the cold scan within 20%% of its ideal when the rate limit binds (%.2fx: %s); GET /v10/images for %s workloads, p99 under 100 ms (%.0f ms as fluxctl asks, one client: %s).\n",
		perRepo, pass(maxPerRepo == 1 && warm.total() == cfg.repos), coldRatio, pass(coldRatio <= 1.2),
		thousands(r.workloads), ms(r.sequential.p99), pass(r.sequential.p99 < 100*time.Millisecond))
	fmt.Fprintf(&b, "\nThe cold scan's ideal is the requests it must make over the rate. The issue's formula, tags / rate (%s / %g = %.0f s), counts one request per tag; a tag costs two (its manifest, then its config for the creation time), so against it the scan took %.2fx. ",
		thousands(tags), cfg.rps, naive.Seconds(), ratio(r.cold, naive))
	fmt.Fprintf(&b, "Scan rate: %.0f tags/s at %g requests/s (%.2f tags/s per request/s); Flux v1's users reported about 8 minutes for 10,000 tags at 20 requests/s (21 tags/s, 1.04 tags/s per request/s).\n",
		float64(tags)/r.cold.Seconds(), cfg.rps, float64(tags)/r.cold.Seconds()/cfg.rps)
	return b.String()
}

// thousands formats n with commas: 20,000.
func thousands(n int) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
