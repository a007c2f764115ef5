package scan

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/fluxd/fluxd/images"
	"github.com/fluxd/fluxd/images/cache"
	"github.com/fluxd/fluxd/images/filter"
	"github.com/fluxd/fluxd/images/internal/mctest"
	"github.com/fluxd/fluxd/images/internal/regtest"
	"github.com/fluxd/fluxd/images/registry"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func day(n int) time.Time { return t0.Add(time.Duration(n) * 24 * time.Hour) }

func newScanner(t *testing.T, c cache.Cache, regOpts []registry.Option, opts ...Option) *Scanner {
	t.Helper()
	reg, err := registry.New(append([]registry.Option{registry.WithRPS(1000), registry.WithBurst(100)}, regOpts...)...)
	if err != nil {
		t.Fatal(err)
	}
	if c == nil {
		c = cache.NewLRU(64 << 20)
	}
	s, err := New(reg, c, append([]Option{WithLogger(zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func refreshRepo(t *testing.T, s *Scanner, repo string) refreshResult {
	t.Helper()
	r, err := s.reg.Resolve(repo)
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.refresh(context.Background(), r)
	if err != nil {
		t.Fatalf("refresh %s: %v", repo, err)
	}
	return res
}

func mustImages(t *testing.T, s *Scanner, repo string) images.Repository {
	t.Helper()
	r, err := s.Images(context.Background(), repo)
	if err != nil {
		t.Fatalf("Images(%s): %v", repo, err)
	}
	return r
}

func tagsOf(infos []images.Info) []string {
	out := make([]string, len(infos))
	for i, in := range infos {
		out[i] = in.Tag()
	}
	return out
}

// TestWarmRefreshIsOneRequest: a cold scan reads every tag's manifest and
// each distinct image config once; a warm refresh of an unchanged
// repository is the tag list alone; a new tag costs its manifest, plus its
// config only when its digest is new.
func TestWarmRefreshIsOneRequest(t *testing.T) {
	srv := regtest.New(t)
	shared := regtest.Image(t, day(3), nil)
	for i := range 7 {
		srv.Push(t, "shop/cart", fmt.Sprintf("1.%d.0", i), regtest.Image(t, day(i), nil))
	}
	for _, tag := range []string{"stable", "v3", "latest"} {
		srv.Push(t, "shop/cart", tag, shared)
	}
	s := newScanner(t, nil, nil)
	repo := srv.Host + "/shop/cart"

	srv.Count()
	res := refreshRepo(t, s, repo)
	got := srv.Counts()
	t.Logf("cold: %v", got)
	if got[regtest.List] != 1 || got[regtest.Manifest] != 10 || got[regtest.Blob] != 8 || res.tags != 10 || !res.changed {
		t.Fatalf("cold scan: requests %v, result %+v; want 1 list, 10 manifests, 8 configs", got, res)
	}

	srv.Count()
	res = refreshRepo(t, s, repo)
	if n := srv.Total(); n != 1 || res.changed {
		t.Fatalf("warm refresh of an unchanged repository: %d requests %v, changed %v; want 1", n, srv.Counts(), res.changed)
	}

	srv.Push(t, "shop/cart", "1.7.0", regtest.Image(t, day(9), nil))
	srv.Count()
	res = refreshRepo(t, s, repo)
	if got := srv.Counts(); got[regtest.List] != 1 || got[regtest.Manifest] != 1 || got[regtest.Blob] != 1 || srv.Total() != 3 || !res.changed {
		t.Fatalf("one new tag: requests %v", got)
	}

	srv.Push(t, "shop/cart", "also-shared", shared)
	srv.Count()
	refreshRepo(t, s, repo)
	if got := srv.Counts(); got[regtest.Manifest] != 1 || got[regtest.Blob] != 0 || srv.Total() != 2 {
		t.Fatalf("a new tag of a known digest: requests %v; want no config read", got)
	}

	r := mustImages(t, s, repo)
	if len(r.Images) != 12 || !r.Complete || r.ScannedAt.IsZero() {
		t.Fatalf("images: %d, complete %v", len(r.Images), r.Complete)
	}
	newest, ok := filter.Latest(filter.All, r.Images)
	if !ok || newest.ID != repo+":1.7.0" || !newest.CreatedAt.Equal(day(9)) || newest.LastFetched.IsZero() || newest.ImageID == "" {
		t.Fatalf("latest: %+v", newest)
	}
	for _, i := range r.Images {
		if i.Tag() == "stable" && !i.CreatedAt.Equal(day(3)) {
			t.Fatalf("stable: %+v", i)
		}
	}
}

// TestConfigOncePerDigest: tags sharing an image, read concurrently, and
// another repository with the same image, read its config once in all.
func TestConfigOncePerDigest(t *testing.T) {
	srv := regtest.New(t)
	img := regtest.Image(t, day(1), nil)
	for i := range 20 {
		srv.Push(t, "a", fmt.Sprintf("t%d", i), img)
	}
	srv.Push(t, "b", "copy", img)
	s := newScanner(t, nil, nil, WithConcurrency(1, 8))
	srv.Count()
	refreshRepo(t, s, srv.Host+"/a")
	refreshRepo(t, s, srv.Host+"/b")
	if got := srv.Counts(); got[regtest.Blob] != 1 || got[regtest.Manifest] != 21 {
		t.Fatalf("requests %v; want one config read for the one digest", got)
	}
}

func TestImagesAnswersFromTheCacheOnly(t *testing.T) {
	srv := regtest.New(t)
	srv.Push(t, "app", "1.0", regtest.Image(t, day(1), nil))
	s := newScanner(t, nil, nil, WithExclude("*/excluded/*"))
	ctx := context.Background()
	repo := srv.Host + "/app"

	_, err := s.Images(ctx, repo)
	var ns *images.NotScannedError
	if !errors.Is(err, images.ErrNotScanned) || !errors.As(err, &ns) || ns.Cause != nil {
		t.Fatalf("never scanned: want ErrNotScanned, got %v", err)
	}

	// A failed first refresh: still not scanned, and why.
	srv.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"errors":[{"code":"UNAUTHORIZED"}]}`)
		return true
	})
	s.Watch([]string{repo}, nil)
	st := s.repos[s.mustResolve(t, repo).Name]
	s.scan(ctx, st)
	_, err = s.Images(ctx, repo)
	if !errors.Is(err, images.ErrNotScanned) || !errors.Is(err, images.ErrUnauthorized) {
		t.Fatalf("after a 401: want ErrNotScanned and ErrUnauthorized, got %v", err)
	}
	t.Log(err)
	srv.SetFault(nil)
	s.scan(ctx, st)
	r := mustImages(t, s, repo)
	if len(r.Images) != 1 || r.Images[0].ID != repo+":1.0" || r.LastError != nil {
		t.Fatalf("images %+v", r)
	}
	// The IDs are spelled as asked; the cache is shared.
	r = mustImages(t, s, repo+":ignored-tag")
	if r.Images[0].ID != repo+":1.0" {
		t.Fatalf("ID %q", r.Images[0].ID)
	}

	// A repository that has no tags is scanned, and empty.
	srv.Push(t, "empty", "x", regtest.Image(t, day(1), nil))
	srv.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if regtest.Kind(r) == regtest.List {
			fmt.Fprint(w, `{"name":"empty","tags":[]}`)
			return true
		}
		return false
	})
	refreshRepo(t, s, srv.Host+"/empty")
	if r := mustImages(t, s, srv.Host+"/empty"); r.Images == nil || len(r.Images) != 0 {
		t.Fatalf("empty repository: %+v", r)
	}
	srv.SetFault(nil)

	if _, err := s.Images(ctx, srv.Host+"/excluded/x"); !errors.Is(err, images.ErrExcluded) {
		t.Fatalf("excluded: %v", err)
	}
	if _, err := s.Images(ctx, "Not A Repo"); err == nil {
		t.Fatal("a bad name")
	}

	// A later failure keeps the images, and says so.
	srv.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		w.WriteHeader(http.StatusBadGateway)
		return true
	})
	s.scan(ctx, st)
	r = mustImages(t, s, repo)
	if len(r.Images) != 1 || !errors.Is(r.LastError, images.ErrUnavailable) {
		t.Fatalf("after a failed refresh: %+v", r)
	}
}

func (s *Scanner) mustResolve(t *testing.T, repo string) registry.Repo {
	t.Helper()
	r, err := s.reg.Resolve(repo)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestVersionedRecords: records of another format version or another key
// version are never read.
func TestVersionedRecords(t *testing.T) {
	srv := regtest.New(t)
	srv.Push(t, "app", "1.0", regtest.Image(t, day(1), nil))
	lru := cache.NewLRU(1 << 20)
	s := newScanner(t, lru, nil)
	repo := srv.Host + "/app"
	name := s.mustResolve(t, repo).Name
	ctx := context.Background()
	// Bytes an older fluxd left, unprefixed and under another version.
	_ = lru.Set(ctx, "repo/"+name, []byte(`garbage`))
	_ = lru.Set(ctx, "fluxd/v0/repo/"+name, []byte(`{"tags":[{"t":"old"}]}`))
	if _, err := s.Images(ctx, repo); !errors.Is(err, images.ErrNotScanned) {
		t.Fatalf("read another version's bytes: %v", err)
	}
	// A record of a newer format under our key is ignored, not misread.
	b, _ := json.Marshal(repoRecord{V: recordVersion + 1, Repo: name, Tags: []tagRecord{{Tag: "future"}}})
	_ = cache.NewChunked(cache.WithPrefix(lru, cache.KeyPrefix), 0).Set(ctx, repoKey(name), b)
	if _, err := s.Images(ctx, repo); !errors.Is(err, images.ErrNotScanned) {
		t.Fatalf("read a record of another format: %v", err)
	}
	refreshRepo(t, s, repo)
	if r := mustImages(t, s, repo); len(r.Images) != 1 || r.Images[0].Tag() != "1.0" {
		t.Fatalf("images %+v", r.Images)
	}
	if _, err := lru.Get(ctx, "fluxd/v1/repo/"+name); err != nil {
		t.Fatalf("the record is not under the versioned key: %v", err)
	}
}

// TestResumeAfterRateLimit: a refresh cut short by a 429 keeps the tags
// read so far, and the next refresh reads only the rest.
func TestResumeAfterRateLimit(t *testing.T) {
	srv := regtest.New(t)
	img := regtest.Image(t, day(1), nil)
	for i := range 40 {
		srv.Push(t, "big", fmt.Sprintf("%d.0.0", i), img)
	}
	var mu sync.Mutex
	served := 0
	srv.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if regtest.Kind(r) != regtest.Manifest {
			return false
		}
		mu.Lock()
		defer mu.Unlock()
		if served < 15 {
			served++
			return false
		}
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
		return true
	})
	s := newScanner(t, nil, nil, WithConcurrency(1, 1))
	repo := srv.Host + "/big"
	r := s.mustResolve(t, repo)
	_, err := s.refresh(context.Background(), r)
	var re *images.RegistryError
	if !errors.As(err, &re) || re.Kind != images.ErrRateLimited {
		t.Fatalf("want a rate-limit error, got %v", err)
	}
	part := mustImages(t, s, repo)
	if part.Complete || len(part.Images) != 15 {
		t.Fatalf("after the 429: %d images, complete %v; want the 15 read", len(part.Images), part.Complete)
	}
	// Highest versions first.
	if !slices.Contains(tagsOf(part.Images), "39.0.0") || slices.Contains(tagsOf(part.Images), "0.0.0") {
		t.Fatalf("tags read first: %v", tagsOf(part.Images))
	}
	srv.SetFault(nil)
	time.Sleep(time.Until(s.reg.PausedUntil(r.Host)))
	srv.Count()
	refreshRepo(t, s, repo)
	if got := srv.Counts(); got[regtest.Manifest] != 25 {
		t.Fatalf("resumed refresh: requests %v; want the 25 manifests left", got)
	}
	if full := mustImages(t, s, repo); !full.Complete || len(full.Images) != 40 {
		t.Fatalf("after resuming: %d images, complete %v", len(full.Images), full.Complete)
	}
}

// TestTagMoves: a tag pushed to again is found by a HEAD once it is due
// for a recheck; a tag deleted between the list and the read is dropped.
func TestTagMovesAndDeletions(t *testing.T) {
	srv := regtest.New(t)
	srv.Push(t, "app", "stable", regtest.Image(t, day(1), nil))
	srv.Push(t, "app", "1.0", regtest.Image(t, day(1), nil))
	s := newScanner(t, nil, nil, WithTagRecheck(time.Millisecond, 1))
	repo := srv.Host + "/app"
	refreshRepo(t, s, repo)

	srv.Push(t, "app", "stable", regtest.Image(t, day(5), nil))
	time.Sleep(5 * time.Millisecond)
	srv.Count()
	res := refreshRepo(t, s, repo)
	got := srv.Counts()
	if got[regtest.Head] != 1 || res.rechecks != 1 {
		t.Fatalf("recheck budget 1: requests %v", got)
	}
	time.Sleep(5 * time.Millisecond)
	refreshRepo(t, s, repo) // the other tag's turn
	r := mustImages(t, s, repo)
	for _, i := range r.Images {
		if i.Tag() == "stable" && !i.CreatedAt.Equal(day(5)) {
			t.Fatalf("stable was not re-read after it moved: %+v", i)
		}
	}

	// Listed, but gone when read.
	srv.Push(t, "app", "ghost", regtest.Image(t, day(2), nil))
	srv.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if regtest.Kind(r) == regtest.Manifest && strings.HasSuffix(r.URL.Path, "/ghost") {
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"errors":[{"code":"MANIFEST_UNKNOWN"}]}`)
			return true
		}
		return false
	})
	refreshRepo(t, s, repo)
	if tags := tagsOf(mustImages(t, s, repo).Images); slices.Contains(tags, "ghost") {
		t.Fatalf("a tag that 404s is listed: %v", tags)
	}
}

// TestUndatableTags: an index without the platform and a manifest the
// registry serves as garbage are listed without a date, and read once.
func TestUndatableTags(t *testing.T) {
	srv := regtest.New(t)
	srv.Push(t, "app", "1.0", regtest.Image(t, day(1), nil))
	srv.Push(t, "app", "broken", regtest.Image(t, day(2), nil))
	srv.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if regtest.Kind(r) == regtest.Manifest && strings.HasSuffix(r.URL.Path, "/broken") {
			w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
			fmt.Fprint(w, `{"schemaVersion": 2, "config": `)
			return true
		}
		return false
	})
	s := newScanner(t, nil, nil)
	repo := srv.Host + "/app"
	refreshRepo(t, s, repo)
	r := mustImages(t, s, repo)
	if len(r.Images) != 2 {
		t.Fatalf("images %v", tagsOf(r.Images))
	}
	latest, ok := filter.Latest(filter.All, r.Images)
	if !ok || latest.Tag() != "1.0" {
		t.Fatalf("automation would pick %+v", latest)
	}
	srv.Count()
	refreshRepo(t, s, repo)
	if n := srv.Total(); n != 1 {
		t.Fatalf("a broken tag is read again at once: %v", srv.Counts())
	}
}

// TestRunAdaptsAndPrioritises runs the scheduler: repositories are
// refreshed on their own, priority ones first; the interval grows while
// nothing changes and shrinks when something does.
func TestRunAdaptsAndPrioritises(t *testing.T) {
	srv := regtest.New(t)
	for _, repo := range []string{"a", "b", "c", "auto"} {
		srv.Push(t, repo, "1.0", regtest.Image(t, day(1), nil))
	}
	var mu sync.Mutex
	var order []string
	srv.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if regtest.Kind(r) == regtest.List {
			mu.Lock()
			order = append(order, strings.Split(r.URL.Path, "/")[2])
			mu.Unlock()
		}
		return false
	})
	const min, max = 40 * time.Millisecond, 320 * time.Millisecond
	s := newScanner(t, nil, nil, WithIntervals(min, max, max), WithConcurrency(1, 2))
	h := srv.Host + "/"
	s.Watch([]string{h + "a", h + "b", h + "c"}, []string{h + "auto"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	waitFor(t, 5*time.Second, "every repository scanned", func() bool {
		for _, r := range s.Status().Repos {
			if r.ScannedAt.IsZero() {
				return false
			}
		}
		return true
	})
	mu.Lock()
	first := order[0]
	mu.Unlock()
	if first != "auto" {
		t.Fatalf("first refreshed %q, want the priority repository (order %v)", first, order)
	}
	waitFor(t, 5*time.Second, "the interval grows to its max", func() bool {
		return statusOf(s, h+"a").Interval == max
	})
	srv.Push(t, "a", "1.1", regtest.Image(t, day(2), nil))
	waitFor(t, 5*time.Second, "the new tag found", func() bool {
		r, err := s.Images(context.Background(), h+"a")
		return err == nil && len(r.Images) == 2
	})
	waitFor(t, time.Second, "the interval shrinks after a change", func() bool {
		st := statusOf(s, h+"a")
		return st.Interval < max && !st.ChangedAt.IsZero()
	})

	// Unwatched repositories are dropped; newly watched ones scanned.
	srv.Push(t, "d", "1.0", regtest.Image(t, day(1), nil))
	s.Watch([]string{h + "d"}, nil)
	waitFor(t, 5*time.Second, "a newly watched repository scanned", func() bool {
		st := s.Status()
		return len(st.Repos) == 1 && !st.Repos[0].ScannedAt.IsZero()
	})
}

func statusOf(s *Scanner, repo string) images.RepoStatus {
	for _, r := range s.Status().Repos {
		if r.Name == repo {
			return r
		}
	}
	return images.RepoStatus{}
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestStuckHostDoesNotBlockOthers: one registry hangs, another rate-limits
// fluxd for a minute; a third is scanned all the same, at once.
func TestStuckHostDoesNotBlockOthers(t *testing.T) {
	stuck, limited, fine := regtest.New(t), regtest.New(t), regtest.New(t)
	for _, srv := range []*regtest.Server{stuck, limited, fine} {
		for _, repo := range []string{"x", "y", "z"} {
			srv.Push(t, repo, "1.0", regtest.Image(t, day(1), nil))
		}
	}
	release := make(chan struct{})
	stuck.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if regtest.Kind(r) == regtest.List {
			<-release
		}
		return false
	})
	defer close(release)
	limited.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Retry-After", "60")
		w.WriteHeader(http.StatusTooManyRequests)
		return true
	})
	s := newScanner(t, nil, nil, WithIntervals(time.Second, time.Minute, time.Minute))
	var all []string
	for _, srv := range []*regtest.Server{stuck, limited, fine} {
		for _, repo := range []string{"x", "y", "z"} {
			all = append(all, srv.Host+"/"+repo)
		}
	}
	s.Watch(all, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	start := time.Now()
	waitFor(t, 3*time.Second, "the healthy host's repositories", func() bool {
		for _, repo := range []string{"x", "y", "z"} {
			if _, err := s.Images(context.Background(), fine.Host+"/"+repo); err != nil {
				return false
			}
		}
		return true
	})
	t.Logf("healthy host scanned in %s, beside a stuck and a rate-limited host", time.Since(start).Round(time.Millisecond))
	var lim images.HostStatus
	for _, h := range s.Status().Hosts {
		if h.Host == limited.Host {
			lim = h
		}
	}
	if !lim.RateLimited || lim.PausedUntil.IsZero() {
		t.Fatalf("rate-limited host status: %+v", lim)
	}
	// The limited host was asked once, then left alone during its pause.
	if n := statusOf(s, limited.Host+"/x"); !errors.Is(n.LastError, images.ErrRateLimited) || n.NextScan.Before(time.Now().Add(50*time.Second)) {
		t.Fatalf("rate-limited repository: %+v", n)
	}
	cancel()
	// Run returns once the stuck request gives up with the context.
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop")
	}
}

// TestColdScanAtRate measures a cold scan of N tags at R requests per
// second: it takes (requests - burst) / R.
func TestColdScanAtRate(t *testing.T) {
	srv := regtest.New(t)
	const n, rps, burst = 100, 50, 10
	img := regtest.Image(t, day(1), nil)
	for i := range n {
		srv.Push(t, "app", fmt.Sprintf("1.0.%d", i), img)
	}
	s := newScanner(t, nil, []registry.Option{registry.WithRPS(rps), registry.WithBurst(burst)})
	repo := srv.Host + "/app"
	srv.Count()
	start := time.Now()
	refreshRepo(t, s, repo)
	took := time.Since(start)
	reqs := srv.Total()
	ideal := time.Duration(float64(reqs-burst) / rps * float64(time.Second))
	t.Logf("cold scan of %d tags: %d requests in %s at %d rps (burst %d); ideal %s", n, reqs, took.Round(time.Millisecond), rps, burst, ideal)
	if took < ideal*9/10 || took > ideal*3 {
		t.Errorf("took %s, want about %s", took, ideal)
	}
	start = time.Now()
	srv.Count()
	refreshRepo(t, s, repo)
	t.Logf("warm refresh: %d request in %s", srv.Total(), time.Since(start).Round(time.Microsecond))
}

// TestRepoOf5000TagsInMemcached scans a repository of 5,000 tags into a
// real memcached (items up to 1 MB): the record is chunked, read back
// whole, and a warm refresh is still one request (five pages of 1000).
func TestRepoOf5000TagsInMemcached(t *testing.T) {
	srv := regtest.New(t)
	srv.Push(t, "big", "base", regtest.Image(t, day(1), nil))
	const n = 5000
	tagList := make([]string, n)
	for i := range n {
		tagList[i] = fmt.Sprintf("build-%05d", i)
	}
	// The registry lists 5,000 tags (in pages of 1000) and serves the base
	// manifest for each.
	manifestPath := regexp.MustCompile(`/manifests/build-\d+$`)
	srv.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		switch regtest.Kind(r) {
		case regtest.List:
			last := r.URL.Query().Get("last")
			i := 0
			if last != "" {
				i = slices.Index(tagList, last) + 1
			}
			end := min(i+1000, n)
			if end < n {
				w.Header().Set("Link", fmt.Sprintf(`</v2/big/tags/list?n=1000&last=%s>; rel="next"`, tagList[end-1]))
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"name": "big", "tags": tagList[i:end]})
			return true
		case regtest.Manifest, regtest.Head:
			r.URL.Path = manifestPath.ReplaceAllString(r.URL.Path, "/manifests/base")
		}
		return false
	})
	mc := mctest.Start(t)
	mcache := cache.NewMemcached(mc.Addr)
	defer mcache.Close()
	c := cache.NewFallback(mcache, cache.NewLRU(8<<20), zerolog.New(zerolog.NewTestWriter(t)), 0)
	s := newScanner(t, c, nil, WithConcurrency(1, 16))
	repo := srv.Host + "/big"

	srv.Count()
	start := time.Now()
	refreshRepo(t, s, repo)
	t.Logf("cold scan of %d tags: %v in %s", n, srv.Counts(), time.Since(start).Round(time.Millisecond))
	if down, err := c.Down(); down {
		t.Fatalf("memcached: %v", err)
	}
	raw, err := cache.NewChunked(cache.WithPrefix(mcache, cache.KeyPrefix), 0).Get(context.Background(), repoKey(s.mustResolve(t, repo).Name))
	if err != nil {
		t.Fatalf("the record is not in memcached: %v", err)
	}
	t.Logf("record: %d bytes, in %d chunks", len(raw), (len(raw)+cache.DefaultChunkSize-1)/cache.DefaultChunkSize)
	if len(raw) <= cache.MemcachedMaxItem {
		t.Fatalf("record of %d bytes; the test wants one over 1 MB", len(raw))
	}

	// A new scanner (a restarted fluxd) answers from memcached at once,
	// and refreshes warm.
	s2 := newScanner(t, c, nil)
	r := mustImages(t, s2, repo)
	if len(r.Images) != n || !r.Complete {
		t.Fatalf("%d images, complete %v", len(r.Images), r.Complete)
	}
	srv.Count()
	start = time.Now()
	refreshRepo(t, s2, repo)
	if got := srv.Counts(); got[regtest.List] != 5 || srv.Total() != 6 {
		t.Fatalf("warm refresh of 5000 tags after a restart: %v; want a ping and 5 pages", got)
	}
	t.Logf("warm refresh of %d tags after a restart: %v in %s", n, srv.Counts(), time.Since(start).Round(time.Millisecond))
}

// TestCheckpointsShowProgress: a long first scan saves its progress, so
// the tags read so far can be listed (marked incomplete) before it ends;
// a first scan that reads nothing never leaves an empty list behind.
func TestCheckpointsShowProgress(t *testing.T) {
	srv := regtest.New(t)
	img := regtest.Image(t, day(1), nil)
	for i := range 30 {
		srv.Push(t, "app", fmt.Sprintf("1.%d.0", i), img)
	}
	s := newScanner(t, nil, []registry.Option{registry.WithRPS(40), registry.WithBurst(1)},
		WithConcurrency(1, 2), WithCheckpoint(100*time.Millisecond))
	repo := srv.Host + "/app"
	done := make(chan struct{})
	go func() {
		defer close(done)
		refreshRepo(t, s, repo)
	}()
	var partial images.Repository
	waitFor(t, 5*time.Second, "a checkpoint", func() bool {
		r, err := s.Images(context.Background(), repo)
		if err == nil && !r.Complete {
			partial = r
			return true
		}
		return false
	})
	<-done
	full := mustImages(t, s, repo)
	t.Logf("checkpoint listed %d of %d tags", len(partial.Images), len(full.Images))
	if len(partial.Images) == 0 || len(partial.Images) >= 30 || !full.Complete || len(full.Images) != 30 {
		t.Fatalf("partial %d, full %d (complete %v)", len(partial.Images), len(full.Images), full.Complete)
	}

	// Rate-limited on the first manifest of a first scan: not scanned.
	srv.Push(t, "other", "1.0", img)
	srv.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if regtest.Kind(r) == regtest.Manifest {
			w.WriteHeader(http.StatusServiceUnavailable)
			return true
		}
		return false
	})
	if _, err := s.refresh(context.Background(), s.mustResolve(t, srv.Host+"/other")); !errors.Is(err, images.ErrUnavailable) {
		t.Fatalf("want ErrUnavailable, got %v", err)
	}
	if _, err := s.Images(context.Background(), srv.Host+"/other"); !errors.Is(err, images.ErrNotScanned) {
		t.Fatalf("a first scan that read nothing: want ErrNotScanned, got %v", err)
	}
}
