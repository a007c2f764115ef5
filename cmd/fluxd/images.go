package main

// Image scanning and list-images: the registry client, the image cache and
// the scanner; the watch list, kept from the live workloads and the
// manifests at the sync tag; and the answer to GET /v10/images, read from
// the cache alone.

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	gosync "sync"
	"time"

	"github.com/Masterminds/semver/v3"
	"github.com/rs/zerolog"

	"github.com/fluxd/fluxd/gitstate"
	"github.com/fluxd/fluxd/images"
	"github.com/fluxd/fluxd/images/cache"
	"github.com/fluxd/fluxd/images/filter"
	"github.com/fluxd/fluxd/images/registry"
	"github.com/fluxd/fluxd/images/scan"
	"github.com/fluxd/fluxd/kube"
	"github.com/fluxd/fluxd/kube/resource"
	"github.com/fluxd/fluxd/server/api"
)

// imageFlags configure image scanning. They are embedded in the daemon's
// flags, so each also has an environment variable (FLUXD_MEMCACHED, ...).
type imageFlags struct {
	Memcached               string        `name:"memcached" help:"memcached for the image cache, host:port (several: comma-separated). Empty: the embedded in-process cache only, which a restart empties."`
	RegistryCacheSize       int           `name:"registry-cache-size" default:"64" help:"Size of the embedded image cache, in MiB. With --memcached it is the copy used while memcached is down."`
	RegistryRPS             float64       `name:"registry-rps" default:"20" help:"Requests per second allowed to each registry host (halved for a while after a 429)."`
	RegistryBurst           int           `name:"registry-burst" default:"10" help:"Requests that may go to a registry host at once after a quiet spell."`
	RegistryExcludeImage    []string      `name:"registry-exclude-image" default:"k8s.gcr.io/*,registry.k8s.io/*" help:"Image repositories never to scan: glob patterns (path.Match; * does not cross /) against the repository as written or its canonical name, e.g. 'index.docker.io/library/*'. Repeatable or comma-separated."`
	RegistryInsecureHost    []string      `name:"registry-insecure-host" help:"Registry host[:port] to reach over plain http; repeatable."`
	RegistryPlatform        string        `name:"registry-platform" default:"linux/amd64" help:"Platform (os/arch[/variant]) whose image of a multi-platform tag is read for its creation time."`
	RegistryPollInterval    time.Duration `name:"registry-poll-interval" default:"1m" help:"Shortest interval between two scans of a repository; a repository that does not change is scanned less and less often, at least every --registry-poll-max-interval (5m at most for automated workloads)."`
	RegistryPollMaxInterval time.Duration `name:"registry-poll-max-interval" default:"15m" help:"Longest interval between two scans of a repository."`
	RegistryPullSecrets     bool          `name:"registry-pull-secrets" default:"true" negatable:"" help:"Use the image pull secrets of the workloads (pod specs and service accounts) as registry credentials. Needs permission to list and watch Secrets and ServiceAccounts; without it fluxd goes on without them."`
	DockerConfig            string        `name:"docker-config" type:"existingfile" help:"Docker config file ({\"auths\":{...}}) with registry credentials, tried after the pull secrets; read again when it changes."`
}

// memcachedAddrs splits --memcached.
func (f *imageFlags) memcachedAddrs() []string {
	var out []string
	for _, a := range strings.Split(f.Memcached, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// Validate runs after parsing, so a bad value is an error at start-up.
func (f *imageFlags) Validate() error {
	for _, a := range f.memcachedAddrs() {
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" {
			return fmt.Errorf("--memcached %q: want host:port, e.g. memcached.flux:11211", a)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("--memcached %q: %q is not a port number", a, port)
		}
	}
	if f.RegistryCacheSize < 1 || f.RegistryCacheSize > 64<<10 {
		return fmt.Errorf("--registry-cache-size %d: use 1 to 65536 (MiB)", f.RegistryCacheSize)
	}
	if f.RegistryPollInterval < time.Second {
		return fmt.Errorf("--registry-poll-interval %s is too short: use 1s or more", f.RegistryPollInterval)
	}
	if f.RegistryPollMaxInterval < f.RegistryPollInterval {
		return fmt.Errorf("--registry-poll-max-interval %s is shorter than --registry-poll-interval %s", f.RegistryPollMaxInterval, f.RegistryPollInterval)
	}
	for _, p := range f.RegistryExcludeImage {
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("--registry-exclude-image %q: %v", p, err)
		}
	}
	checks := []struct {
		flag string
		opt  registry.Option
	}{
		{"--registry-rps", registry.WithRPS(f.RegistryRPS)},
		{"--registry-burst", registry.WithBurst(f.RegistryBurst)},
		{"--registry-platform", registry.WithPlatform(f.RegistryPlatform)},
		{"--registry-insecure-host", registry.WithInsecure(f.RegistryInsecureHost...)},
	}
	for _, c := range checks {
		if _, err := registry.New(c.opt); err != nil {
			return fmt.Errorf("%s: %w", c.flag, err)
		}
	}
	if f.DockerConfig != "" {
		if _, err := registry.New(registry.WithDockerConfig(f.DockerConfig)); err != nil {
			return fmt.Errorf("--docker-config: %w", err)
		}
	}
	return nil
}

// scanIntervals are the scanner's refresh intervals from the flags:
// automated workloads' repositories at least every 5m (or the flags' bounds).
func (f *imageFlags) scanIntervals() (minI, maxI, prio time.Duration) {
	minI, maxI = f.RegistryPollInterval, f.RegistryPollMaxInterval
	prio = min(max(scan.DefaultPriorityMaxInterval, minI), maxI)
	return minI, maxI, prio
}

// imageSource is what imageAPI needs of the scanner (*scan.Scanner).
type imageSource interface {
	Watch(repos, priority []string)
	Refresh(repo string) error
	Images(ctx context.Context, repo string) (images.Repository, error)
	Status() images.Status
	Run(ctx context.Context) error
}

// workloadLister lists workloads as ListWorkloads does.
type workloadLister func(ctx context.Context, namespace string, ids []resource.ID) ([]api.ControllerStatus, error)

// imageAPI scans the registries of the images fluxd's workloads use and
// answers list-images from what the scan cached.
type imageAPI struct {
	log       zerolog.Logger
	src       imageSource
	canonical func(repo string) (string, error) // the registry's name of a repository
	list      workloadLister
	c         *clusterAPI       // the watch list's sources; nil in tests
	secrets   *kube.PullSecrets // nil without --registry-pull-secrets
	fallback  *cache.Fallback   // nil without --memcached
	closeFn   func()
	pollEvery time.Duration
	manifests manifestImages
	// workloadsVersion is the version of the workloads' answer (see
	// clusterAPI.Version); nil: ListImages answers are not reused.
	workloadsVersion func() string

	filters gosync.Map // tag filter text -> parsedFilter

	mu    gosync.RWMutex
	repos map[string]*repoMemo // by repository as written in the workloads
	canon map[string]string    // repository as written -> canonical, "" when it does not parse
}

// newImages builds the registry client, the cache (the embedded LRU, behind
// memcached when --memcached is set) and the scanner.
func newImages(ctx context.Context, f *imageFlags, cluster *kube.Cluster, c *clusterAPI, log zerolog.Logger) (*imageAPI, error) {
	log = log.With().Str("component", "images").Logger()
	regOpts := []registry.Option{
		registry.WithRPS(f.RegistryRPS),
		registry.WithBurst(f.RegistryBurst),
		registry.WithPlatform(f.RegistryPlatform),
		registry.WithInsecure(f.RegistryInsecureHost...),
		registry.WithUserAgent("fluxd/" + version),
		registry.WithLogger(log.With().Str("part", "registry").Logger()),
	}
	if f.DockerConfig != "" {
		regOpts = append(regOpts, registry.WithDockerConfig(f.DockerConfig))
	}
	var secrets *kube.PullSecrets
	if f.RegistryPullSecrets && cluster != nil {
		secrets = cluster.NewPullSecrets()
		regOpts = append(regOpts, registry.WithPullSecrets(secrets))
	}
	reg, err := registry.New(regOpts...)
	if err != nil {
		return nil, fmt.Errorf("registry client: %w", err)
	}

	var store cache.Cache = cache.NewLRU(f.RegistryCacheSize << 20)
	var fallback *cache.Fallback
	closeFn := func() {}
	if addrs := f.memcachedAddrs(); len(addrs) > 0 {
		mc := cache.NewMemcached(addrs...)
		fallback = cache.NewFallback(mc, store, log.With().Str("part", "cache").Logger(), 0)
		store, closeFn = fallback, func() { _ = mc.Close() }
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if err := mc.Ping(pctx); err != nil {
			log.Warn().Err(err).Strs("memcached", addrs).Msg("memcached does not answer yet: using the embedded cache until it does")
		} else {
			log.Info().Strs("memcached", addrs).Msg("image cache in memcached")
		}
		cancel()
	} else {
		log.Info().Int("mib", f.RegistryCacheSize).Msg("image cache in memory (set --memcached to keep it across restarts)")
	}

	minI, maxI, prio := f.scanIntervals()
	scanner, err := scan.New(reg, store,
		scan.WithIntervals(minI, maxI, prio),
		scan.WithExclude(f.RegistryExcludeImage...),
		scan.WithLogger(log.With().Str("part", "scan").Logger()),
	)
	if err != nil {
		closeFn()
		return nil, fmt.Errorf("image scanner: %w", err)
	}
	a := newImageAPI(scanner, func(repo string) (string, error) {
		r, err := reg.Resolve(repo)
		return r.Name, err
	}, c.ListWorkloads, log)
	a.c, a.secrets, a.fallback, a.closeFn = c, secrets, fallback, closeFn
	a.workloadsVersion = c.Version
	return a, nil
}

func newImageAPI(src imageSource, canonical func(string) (string, error), list workloadLister, log zerolog.Logger) *imageAPI {
	return &imageAPI{
		log:       log,
		src:       src,
		canonical: canonical,
		list:      list,
		closeFn:   func() {},
		pollEvery: 2 * time.Second,
		repos:     map[string]*repoMemo{},
		canon:     map[string]string{},
	}
}

// Run scans until ctx is done, and keeps the scanner's watch list that of
// the images in use: those of the live workloads and of the manifests at
// the sync tag, the automated workloads' first.
func (a *imageAPI) Run(ctx context.Context) error {
	defer a.closeFn()
	var wg gosync.WaitGroup
	errs := make(chan error, 2)
	wg.Go(func() { errs <- a.src.Run(ctx) })
	if a.secrets != nil {
		wg.Go(func() { errs <- a.secrets.Run(ctx) })
	}
	var w watcher
	t := time.NewTicker(a.pollEvery)
	defer t.Stop()
	for {
		if a.c != nil {
			a.updateWatch(ctx, &w)
		}
		a.prune(time.Now())
		select {
		case <-ctx.Done():
			wg.Wait()
			close(errs)
			var all []error
			for err := range errs {
				all = append(all, err)
			}
			return errors.Join(all...)
		case <-t.C:
		}
	}
}

// prune forgets the memos of repositories no call asked for in a while.
func (a *imageAPI) prune(now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for repo, m := range a.repos {
		if now.Sub(m.loadedAt) > 5*memoMaxAge {
			delete(a.repos, repo)
			delete(a.canon, repo)
		}
	}
}

// watcher is Run's memory of what it last told the scanner.
type watcher struct {
	commit     string
	ready      bool
	gen        uint64
	repos      []string
	priority   []string
	warnedSecr bool
}

// updateWatch gives the scanner the repositories in use, when the
// workloads or the sync tag changed since the last call.
func (a *imageAPI) updateWatch(ctx context.Context, w *watcher) {
	if a.secrets != nil && !w.warnedSecr {
		if err := a.secrets.Problem(); err != nil {
			w.warnedSecr = true
			a.log.Warn().Err(err).Msg("image pull secrets cannot be read: scanning with --docker-config credentials, or anonymously")
		}
	}
	st := a.c.loop.Status()
	commit := st.Applied
	if commit == "" {
		commit = st.Head
	}
	ready, gen := a.c.cache.Ready(), a.c.cache.Generation()
	if commit == w.commit && ready == w.ready && gen == w.gen && w.repos != nil {
		return
	}
	var live []kube.Workload
	if ready {
		var err error
		if live, err = a.c.cache.Workloads(ctx, ""); err != nil {
			a.log.Warn().Err(err).Msg("cannot list the workloads to scan their images; trying again")
			return
		}
	}
	inRepo, objs, err := a.manifests.at(&a.c.manifest, a.c.repo, commit, a.c.paths)
	if err != nil {
		a.log.Warn().Err(err).Str("commit", short(commit)).Msg("cannot read the manifests to scan their images; trying again")
		return
	}
	if a.secrets != nil {
		a.secrets.SetManifests(objs)
	}
	repos, priority := watchLists(live, inRepo)
	if !slices.Equal(repos, w.repos) || !slices.Equal(priority, w.priority) {
		a.src.Watch(repos, priority)
		a.log.Debug().Int("repos", len(repos)).Int("automated", len(priority)).Msg("image repositories to scan")
	}
	w.commit, w.ready, w.gen, w.repos, w.priority = commit, ready, gen, repos, priority
	if w.repos == nil {
		w.repos = []string{}
	}
}

// watchLists returns the repositories of the images in use, sorted, and
// those of automated workloads (automated in the manifests; their live
// images too).
func watchLists(live []kube.Workload, inRepo map[resource.ID]manifestWorkload) (repos, priority []string) {
	all, prio := map[string]bool{}, map[string]bool{}
	add := func(ref string, automated bool) {
		repo, _, _ := images.SplitRef(strings.TrimSpace(ref))
		if repo == "" {
			return
		}
		all[repo] = true
		if automated {
			prio[repo] = true
		}
	}
	for _, mw := range inRepo {
		for _, ref := range mw.images {
			add(ref, mw.automated)
		}
	}
	for _, wl := range live {
		automated := inRepo[wl.ID].automated
		for _, c := range wl.Containers {
			add(c.Image, automated)
		}
	}
	return sortedKeys(all), sortedKeys(prio)
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Notify makes a repository due for a scan now, after a registry said it
// was pushed to (POST /v11/notify with an image change).
func (a *imageAPI) Notify(repo string) {
	if err := a.src.Refresh(repo); err != nil {
		a.log.Info().Err(err).Str("repo", repo).Msg("image notification for a repository fluxd does not scan: ignored")
		return
	}
	a.log.Info().Str("repo", repo).Msg("image notification: scanning the repository now")
}

// Status is the scanner's state: every watched repository and registry host.
func (a *imageAPI) Status() images.Status { return a.src.Status() }

// CacheDown reports whether memcached is unreachable (the embedded cache
// serves meanwhile), and why.
func (a *imageAPI) CacheDown() (bool, error) {
	if a.fallback == nil {
		return false, nil
	}
	return a.fallback.Down()
}

// Texts of AvailableError.
const (
	notScannedYet = "image data not available yet: the repository has not been scanned"
)

// ListImages lists each selected workload's containers with their running
// image and the images of its repository, newest first as the container's
// tag filter orders them. It reads only what the scanner cached, and keeps
// what it made of a repository until the scanner reads it again, so a warm
// call makes no request to a registry or to memcached.
func (a *imageAPI) ListImages(ctx context.Context, namespace string, ids []resource.ID) ([]api.ImageStatus, error) {
	ws, err := a.list(ctx, namespace, ids)
	if err != nil {
		return nil, err
	}
	call := &listCall{a: a, stamps: a.stamps(), seen: map[string]*repoMemo{}}
	out := make([]api.ImageStatus, 0, len(ws))
	for _, w := range ws {
		st := api.ImageStatus{ID: w.ID, Containers: make([]api.Container, 0, len(w.Containers))}
		for _, c := range w.Containers {
			st.Containers = append(st.Containers, call.container(ctx, c.Name, string(c.Current.ID), w.Policies[resource.PolicyTagPrefix+c.Name]))
		}
		out = append(out, st)
	}
	return out, nil
}

// Version changes whenever ListImages may answer differently, so that the
// server can reuse an encoded answer: when the workloads or their tag
// filters change (the cluster's version), when the scanner finds a
// repository's tags changed, scans one for the first time or fails on
// one; and at least every memoMaxAge, as memos are read again that often
// (another fluxd may fill a shared memcached), or every memoRetry while a
// repository is not scanned yet or failing. "" (no reuse) without a
// workloads version.
func (a *imageAPI) Version() string {
	if a.workloadsVersion == nil {
		return ""
	}
	h := fnv.New64a()
	every := memoMaxAge
	for _, r := range a.src.Status().Repos {
		fmt.Fprintf(h, "%s|%d|%d|%t\n", r.Canonical, r.ChangedAt.UnixNano(), r.LastErrorAt.UnixNano(), r.ScannedAt.IsZero())
		if !r.Excluded && (r.ScannedAt.IsZero() || r.LastError != nil) {
			every = memoRetry
		}
	}
	return fmt.Sprintf("%s|%x|%d", a.workloadsVersion(), h.Sum64(), time.Now().UnixNano()/int64(every))
}

// repoStamp says which scan of a repository a memo holds.
type repoStamp struct {
	scannedAt, lastErrAt time.Time
}

// stamps maps canonical repository names to the scanner's state of them.
func (a *imageAPI) stamps() map[string]repoStamp {
	st := a.src.Status()
	out := make(map[string]repoStamp, len(st.Repos))
	for _, r := range st.Repos {
		if r.Canonical != "" {
			out[r.Canonical] = repoStamp{scannedAt: r.ScannedAt, lastErrAt: r.LastErrorAt}
		}
	}
	return out
}

// How long a memo of a repository is used: until the scanner scans it
// again, but no longer than memoMaxAge; a repository this fluxd has not
// scanned yet (answered from a cache an earlier fluxd filled, or not at all)
// is read again after memoRetry.
const (
	memoMaxAge = time.Minute
	memoRetry  = 2 * time.Second
)

// repoMemo is what ListImages made of one repository's cached images.
type repoMemo struct {
	loadedAt time.Time
	stamp    repoStamp
	stamped  bool // the scanner had scanned it when it was read
	repo     images.Repository
	err      error
	byTag    map[string]int // tag -> index in repo.Images
	byDigest map[string]int

	mu    gosync.Mutex
	views map[string]*repoView // by filter
}

// repoView is a repository's images ordered by one tag filter.
type repoView struct {
	all         []api.Info // newest first by the filter's ordering
	allVer      []*semver.Version
	filtered    []api.Info // those the filter accepts, in the same order
	filteredVer []*semver.Version
	latest      api.Info // the newest accepted image with a creation time
}

type parsedFilter struct {
	f   filter.Filter
	err error
}

func (a *imageAPI) filter(s string) parsedFilter {
	if v, ok := a.filters.Load(s); ok {
		return v.(parsedFilter)
	}
	f, err := filter.Parse(s)
	if err != nil {
		f = filter.All
	}
	pf := parsedFilter{f: f, err: err}
	a.filters.Store(s, pf)
	return pf
}

// listCall is the state of one ListImages call.
type listCall struct {
	a      *imageAPI
	stamps map[string]repoStamp
	seen   map[string]*repoMemo
}

func (l *listCall) repo(ctx context.Context, repo string) *repoMemo {
	if m, ok := l.seen[repo]; ok {
		return m
	}
	m := l.a.memo(ctx, repo, l.stamps)
	l.seen[repo] = m
	return m
}

// memo returns the memo of a repository, reading the cache again when the
// scanner scanned it since, or the memo is old.
func (a *imageAPI) memo(ctx context.Context, repo string, stamps map[string]repoStamp) *repoMemo {
	now := time.Now()
	a.mu.RLock()
	m, ok := a.repos[repo]
	canon, resolved := a.canon[repo]
	a.mu.RUnlock()
	if !resolved {
		c, err := a.canonical(repo)
		if err != nil {
			c = ""
		}
		canon = c
	}
	stamp, stamped := stamps[canon]
	stamped = stamped && !stamp.scannedAt.IsZero()
	if ok && m.fresh(now, stamp, stamped) {
		return m
	}
	m = loadMemo(ctx, a.src, repo, now, stamp, stamped)
	a.mu.Lock()
	a.repos[repo] = m
	a.canon[repo] = canon
	a.mu.Unlock()
	return m
}

func (m *repoMemo) fresh(now time.Time, stamp repoStamp, stamped bool) bool {
	age := now.Sub(m.loadedAt)
	switch {
	case age >= memoMaxAge:
		return false
	case !stamped || !m.stamped || m.err != nil || !m.repo.Complete:
		return age < memoRetry && m.stamped == stamped && (!stamped || m.stamp == stamp)
	}
	return m.stamp == stamp
}

func loadMemo(ctx context.Context, src imageSource, repo string, now time.Time, stamp repoStamp, stamped bool) *repoMemo {
	r, err := src.Images(ctx, repo)
	m := &repoMemo{loadedAt: now, stamp: stamp, stamped: stamped, repo: r, err: err, views: map[string]*repoView{}}
	if err != nil {
		return m
	}
	m.byTag = make(map[string]int, len(r.Images))
	m.byDigest = make(map[string]int, len(r.Images))
	for i, info := range r.Images {
		m.byTag[info.Tag()] = i
		if info.Digest != "" {
			if _, dup := m.byDigest[info.Digest]; !dup {
				m.byDigest[info.Digest] = i
			}
		}
	}
	return m
}

// view orders the repository's images by a filter, once per filter.
func (m *repoMemo) view(key string, f filter.Filter) *repoView {
	m.mu.Lock()
	defer m.mu.Unlock()
	if v, ok := m.views[key]; ok {
		return v
	}
	sorted := slices.Clone(m.repo.Images)
	f.Sort(sorted)
	isSemver := f.Kind() == filter.Semver
	v := &repoView{all: make([]api.Info, len(sorted))}
	if isSemver {
		v.allVer = make([]*semver.Version, len(sorted))
	}
	latestSet := false
	for i, info := range sorted {
		ai := apiInfo(info)
		v.all[i] = ai
		var ver *semver.Version
		if isSemver {
			ver, _ = semver.NewVersion(info.Tag())
			v.allVer[i] = ver
		}
		if f.Match(info.Tag()) {
			v.filtered = append(v.filtered, ai)
			if isSemver {
				v.filteredVer = append(v.filteredVer, ver)
			}
			if !latestSet && !info.CreatedAt.IsZero() {
				v.latest, latestSet = ai, true
			}
		}
	}
	m.views[key] = v
	return v
}

func apiInfo(i images.Info) api.Info {
	return api.Info{
		ID:          api.ImageRef(i.ID),
		Digest:      i.Digest,
		ImageID:     i.ImageID,
		Labels:      api.ImageLabels{BuildDate: i.Labels.BuildDate, Created: i.Labels.Created},
		CreatedAt:   i.CreatedAt,
		LastFetched: i.LastFetched,
	}
}

// container describes one container: its running image, and the images of
// its repository, as its tag filter (policy tag.<container>) orders them.
func (l *listCall) container(ctx context.Context, name, ref, tagFilter string) api.Container {
	c := api.Container{Name: name, Current: api.Info{ID: api.ImageRef(ref)}}
	repo, tag, digest := images.SplitRef(strings.TrimSpace(ref))
	if repo == "" {
		c.AvailableError = api.NoImageData + ": the container has no image"
		return c
	}
	m := l.repo(ctx, repo)
	if m.err != nil {
		c.AvailableError = availableError(repo, m.err)
		return c
	}
	if i, ok := m.find(tag, digest); ok {
		found := m.repo.Images[i]
		c.Current = apiInfo(found)
		c.Current.ID = api.ImageRef(ref)
		if tag == "" {
			tag = found.Tag() // a digest ref: compare versions by the tag that has it
		}
	}
	pf := l.a.filter(tagFilter)
	v := m.view(pf.f.String(), pf.f)
	isSemver := pf.f.Kind() == filter.Semver
	var curVer *semver.Version
	if isSemver && tag != "" {
		curVer, _ = semver.NewVersion(tag)
	}
	c.Available = v.all
	c.AvailableImagesCount = len(v.all)
	c.NewAvailableImagesCount = newerThan(v.all, v.allVer, c.Current, curVer, isSemver)
	var notes []string
	if pf.err != nil {
		// A filter that does not parse accepts nothing: automation leaves
		// the container alone, and so does a release of all images.
		notes = append(notes, fmt.Sprintf("the tag filter of container %s does not parse, so no image passes it: %v", name, pf.err))
	} else {
		c.LatestFiltered = v.latest
		c.FilteredImagesCount = len(v.filtered)
		c.NewFilteredImagesCount = newerThan(v.filtered, v.filteredVer, c.Current, curVer, isSemver)
	}
	switch {
	case len(v.all) == 0 && m.repo.Complete:
		notes = append(notes, "no images: the repository has no tags")
	case len(v.all) == 0:
		notes = append(notes, notScannedYet+" (the first scan is still running)")
	case !m.repo.Complete:
		notes = append(notes, fmt.Sprintf("the first scan of the repository is still running: %d tags read so far", len(v.all)))
	}
	if m.repo.LastError != nil {
		notes = append(notes, fmt.Sprintf("the last scan failed, these are the images as of %s: %v",
			m.repo.ScannedAt.UTC().Format(time.RFC3339), m.repo.LastError))
	}
	c.AvailableError = strings.Join(notes, "; ")
	return c
}

// find returns the index of the running image: by digest when the ref has
// one, else by tag.
func (m *repoMemo) find(tag, digest string) (int, bool) {
	if digest != "" {
		if i, ok := m.byDigest[digest]; ok {
			return i, true
		}
		return 0, false
	}
	if tag == "" {
		tag = "latest"
	}
	i, ok := m.byTag[tag]
	return i, ok
}

// availableError says why a repository has no images to list.
func availableError(repo string, err error) string {
	var ns *images.NotScannedError
	switch {
	case errors.Is(err, images.ErrExcluded):
		return api.NoImageData + ": " + repo + " is excluded from scanning (--registry-exclude-image)"
	case errors.As(err, &ns) && ns.Cause != nil:
		return notScannedYet + "; the last attempt failed: " + ns.Cause.Error()
	case errors.Is(err, images.ErrNotScanned):
		return notScannedYet
	}
	return api.NoImageData + ": " + err.Error()
}

// newerThan counts the images of list (ordered newest first by the
// filter) that are newer than cur: for a semver filter, higher versions;
// otherwise, created later. Ties are not newer, nor are images without a
// creation time. The newer images are a prefix of list, so this is a
// binary search.
func newerThan(list []api.Info, vers []*semver.Version, cur api.Info, curVer *semver.Version, isSemver bool) int {
	return sort.Search(len(list), func(i int) bool {
		a := list[i]
		if a.CreatedAt.IsZero() {
			return true
		}
		if isSemver {
			v := vers[i]
			switch {
			case v == nil:
				return true
			case curVer == nil:
				return false
			}
			return !v.GreaterThan(curVer)
		}
		return !cur.CreatedAt.IsZero() && !a.CreatedAt.After(cur.CreatedAt)
	})
}

// manifestImages keeps what the manifests at one commit say about images:
// each workload's container images and whether it is automated, derived
// once per commit from the manifests clusterAPI's manifestCache parsed.
type manifestImages struct {
	mu     gosync.Mutex
	commit string
	loaded bool
	byID   map[resource.ID]manifestWorkload
	objs   []kube.Object
}

type manifestWorkload struct {
	images    []string
	automated bool
}

func (m *manifestImages) at(source *manifestCache, repo *gitstate.Repo, commit string, paths []string) (map[resource.ID]manifestWorkload, []kube.Object, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.loaded && commit == m.commit {
		return m.byID, m.objs, nil
	}
	byID := map[resource.ID]manifestWorkload{}
	var objs []kube.Object
	if commit != "" {
		all, err := source.objects(repo, commit, paths)
		if err != nil {
			return nil, nil, err
		}
		for _, o := range all {
			id := o.ID()
			p := resource.PodSpecPath(id.Kind)
			if p == nil {
				continue
			}
			if id.Namespace == resource.ClusterScope {
				// Sync puts a namespaced object without a namespace here.
				id = resource.MakeID(kube.DefaultNamespace, id.Kind, id.Name)
			}
			objs = append(objs, o)
			byID[id] = manifestWorkload{
				images:    podImages(o.Obj.Object, p),
				automated: resource.PoliciesFromAnnotations(o.Obj.GetAnnotations()).Automated(),
			}
		}
	}
	m.commit, m.loaded, m.byID, m.objs = commit, true, byID, objs
	return byID, objs, nil
}

// podImages lists the images of the containers and init containers of the
// pod spec at path.
func podImages(obj map[string]interface{}, path []string) []string {
	var cur interface{} = obj
	for _, p := range path {
		mm, _ := cur.(map[string]interface{})
		cur = mm[p]
	}
	spec, _ := cur.(map[string]interface{})
	var out []string
	for _, field := range []string{"containers", "initContainers"} {
		list, _ := spec[field].([]interface{})
		for _, c := range list {
			cm, _ := c.(map[string]interface{})
			if img, _ := cm["image"].(string); img != "" {
				out = append(out, img)
			}
		}
	}
	return out
}

// registryStatus summarises the scanner for /v12/status.
func (a *imageAPI) registryStatus() *api.RegistryStatus {
	st := a.Status()
	out := &api.RegistryStatus{Cache: "embedded", ReposKnown: len(st.Repos), RepoErrors: []api.RepoError{}, Hosts: []api.RegistryHost{}}
	if a.fallback != nil {
		out.Cache = "memcached"
		if down, err := a.CacheDown(); down {
			out.Cache = fmt.Sprintf("memcached (unreachable: %v; the embedded cache serves meanwhile)", err)
		}
	}
	for _, r := range st.Repos {
		if !r.ScannedAt.IsZero() {
			out.ReposScanned++
		}
		if r.LastError != nil {
			out.RepoErrors = append(out.RepoErrors, api.RepoError{Repo: r.Name, Error: r.LastError.Error(), At: r.LastErrorAt})
		}
	}
	for _, h := range st.Hosts {
		e := ""
		if h.LastError != nil {
			e = h.LastError.Error()
		}
		out.Hosts = append(out.Hosts, api.RegistryHost{Host: h.Host, RateLimited: h.RateLimited, Rate: h.Rate, ConfiguredRate: h.ConfiguredRate, LastError: e})
	}
	return out
}
