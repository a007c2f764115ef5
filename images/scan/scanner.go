// Package scan keeps the image cache up to date for the repositories that
// fluxd's workloads use, and answers what tags a repository has.
//
// The caller says which repositories to watch (from the live workloads and
// the manifests) and which of them automated workloads need (the priority
// set). Each registry host gets its own scheduling loop, so a host that is
// slow, down or rate-limiting fluxd never holds up another. Each
// repository is refreshed on an adaptive interval: more often after a
// refresh found new tags, less often while nothing changes. A warm refresh
// of an unchanged repository costs one request: only tags not seen before
// are read, and what a manifest digest stands for is read once and cached
// for good.
//
// All state lives in the cache (memcached or the embedded LRU), so a
// restarted fluxd with memcached answers at once and refreshes warm.
package scan

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/fluxd/fluxd/images"
	"github.com/fluxd/fluxd/images/cache"
	"github.com/fluxd/fluxd/images/registry"
)

// Scanner refreshes watched repositories into the cache. Use New, then
// Watch (any time, from any goroutine) and Run.
type Scanner struct {
	reg      *registry.Client
	cache    cache.Cache
	opts     options
	log      zerolog.Logger
	platform string

	flightMu sync.Mutex
	flights  map[string]*flight

	mu      sync.Mutex
	repos   map[string]*repoState // by canonical name
	invalid map[string]error      // repositories that do not parse
	hosts   map[string]*hostLoop
	ctx     context.Context // Run's, nil before Run
	stopped bool
	wg      sync.WaitGroup
}

// repoState is the scheduling state of one watched repository; guarded by
// Scanner.mu.
type repoState struct {
	repo      registry.Repo
	priority  bool
	excluded  bool
	scanning  bool
	interval  time.Duration
	next      time.Time
	scannedAt time.Time
	changedAt time.Time
	tags      int
	failures  int
	lastErr   error
	lastErrAt time.Time
}

type hostLoop struct {
	name string
	wake chan struct{}
}

func (h *hostLoop) poke() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// New returns a Scanner that reads registries with reg and keeps what it
// finds in c. The scanner versions its keys (cache.KeyPrefix) and splits
// large values into chunks itself: pass the plain cache (the LRU, or a
// Fallback of memcached to the LRU).
func New(reg *registry.Client, c cache.Cache, opts ...Option) (*Scanner, error) {
	if reg == nil || c == nil {
		return nil, errors.New("scanner: a registry client and a cache are required")
	}
	o := defaultOptions()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	o.priorityMax = min(o.priorityMax, o.maxInterval)
	return &Scanner{
		reg:      reg,
		cache:    cache.NewChunked(cache.WithPrefix(c, cache.KeyPrefix), o.chunkSize),
		opts:     o,
		log:      o.log,
		platform: reg.Platform(),
		flights:  map[string]*flight{},
		repos:    map[string]*repoState{},
		invalid:  map[string]error{},
		hosts:    map[string]*hostLoop{},
	}, nil
}

// Watch sets the repositories to keep refreshed, replacing the previous
// set: repos are all the repositories in use, priority those an automated
// workload needs (refreshed first, and at least every priority max
// interval; a priority repository missing from repos is watched too).
// Tags and digests on the names are ignored. A name that does not parse is
// logged and reported by Status.
func (s *Scanner) Watch(repos []string, priority []string) {
	type want struct {
		repo     registry.Repo
		priority bool
	}
	wanted := map[string]*want{}
	invalid := map[string]error{}
	add := func(name string, prio bool) {
		r, err := s.reg.Resolve(name)
		if err != nil {
			invalid[name] = err
			return
		}
		if w, ok := wanted[r.Name]; ok {
			w.priority = w.priority || prio
			return
		}
		wanted[r.Name] = &want{repo: r, priority: prio}
	}
	for _, p := range priority {
		add(p, true)
	}
	for _, r := range repos {
		add(r, false)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	for name, err := range invalid {
		if _, seen := s.invalid[name]; !seen {
			s.log.Warn().Err(err).Str("repo", name).Msg("not scanning an image repository that does not parse")
		}
	}
	s.invalid = invalid
	for name, st := range s.repos {
		if _, ok := wanted[name]; !ok {
			delete(s.repos, name)
			s.reg.Forget(st.repo)
		}
	}
	for name, w := range wanted {
		st, ok := s.repos[name]
		if !ok {
			st = &repoState{repo: w.repo, interval: s.opts.minInterval}
			st.excluded = s.excluded(w.repo)
			s.repos[name] = st
		}
		st.priority = w.priority
		h, ok := s.hosts[w.repo.Host]
		if !ok {
			h = &hostLoop{name: w.repo.Host, wake: make(chan struct{}, 1)}
			s.hosts[w.repo.Host] = h
			s.startLocked(h)
		}
		if !st.excluded {
			h.poke()
		}
	}
}

func (s *Scanner) excluded(r registry.Repo) bool {
	for _, p := range s.opts.exclude {
		for _, n := range []string{r.Given, r.Name} {
			if ok, _ := path.Match(p, n); ok {
				return true
			}
		}
	}
	return false
}

// Refresh makes a watched repository due now (e.g. after a registry
// webhook said it was pushed to). It returns at once.
func (s *Scanner) Refresh(repo string) error {
	r, err := s.reg.Resolve(repo)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.repos[r.Name]
	if !ok {
		return fmt.Errorf("%s: not watched", repo)
	}
	if st.excluded {
		return fmt.Errorf("%s: %w", repo, images.ErrExcluded)
	}
	st.next = time.Time{}
	s.hosts[r.Host].poke()
	return nil
}

// Run refreshes the watched repositories until ctx is done: one loop per
// registry host. It returns nil once they have all stopped.
func (s *Scanner) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.ctx != nil {
		s.mu.Unlock()
		return errors.New("scanner: Run called twice")
	}
	s.ctx = ctx
	for _, h := range s.hosts {
		s.startLocked(h)
	}
	s.mu.Unlock()

	<-ctx.Done()
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// startLocked starts a host's loop if Run is running. Called with s.mu
// held.
func (s *Scanner) startLocked(h *hostLoop) {
	if s.ctx == nil || s.stopped {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.runHost(s.ctx, h)
	}()
}

// maxIdle bounds a host loop's sleep, as a safety net.
const maxIdle = time.Minute

// runHost refreshes the due repositories of one host, up to
// hostConcurrency at a time, priority ones first, and sleeps while none is
// due or the host is paused after a 429.
func (s *Scanner) runHost(ctx context.Context, h *hostLoop) {
	slots := make(chan struct{}, s.opts.hostConcurrency)
	var running sync.WaitGroup
	defer running.Wait()
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		st, wait := s.pick(h.name, time.Now())
		if st == nil {
			<-slots
			timer := time.NewTimer(wait)
			select {
			case <-timer.C:
			case <-h.wake:
				timer.Stop()
			case <-ctx.Done():
				timer.Stop()
				return
			}
			continue
		}
		running.Add(1)
		go func() {
			defer running.Done()
			defer func() { <-slots }()
			s.scan(ctx, st)
			h.poke()
		}()
	}
}

// pick returns the next due repository of a host and marks it scanning,
// or how long to sleep. Priority repositories come first, then those never
// scanned, then the longest overdue.
func (s *Scanner) pick(hostname string, now time.Time) (*repoState, time.Duration) {
	if until := s.reg.PausedUntil(hostname); until.After(now) {
		return nil, until.Sub(now)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var best *repoState
	wait := maxIdle
	for _, st := range s.repos {
		if st.repo.Host != hostname || st.excluded || st.scanning {
			continue
		}
		if st.next.After(now) {
			wait = min(wait, st.next.Sub(now))
			continue
		}
		if best == nil || before(st, best) {
			best = st
		}
	}
	if best == nil {
		return nil, wait
	}
	best.scanning = true
	return best, 0
}

func before(a, b *repoState) bool {
	if a.priority != b.priority {
		return a.priority
	}
	if an, bn := a.scannedAt.IsZero(), b.scannedAt.IsZero(); an != bn {
		return an
	}
	if !a.next.Equal(b.next) {
		return a.next.Before(b.next)
	}
	return a.repo.Name < b.repo.Name
}

// scan refreshes one repository and schedules its next refresh.
func (s *Scanner) scan(ctx context.Context, st *repoState) {
	r := st.repo
	sctx, cancel := context.WithTimeout(ctx, s.opts.scanTimeout)
	start := time.Now()
	res, err := s.refresh(sctx, r)
	cancel()
	now := time.Now()

	s.mu.Lock()
	defer s.mu.Unlock()
	st.scanning = false
	if ctx.Err() != nil {
		return // shutting down
	}
	log := s.log.With().Str("repo", r.Given).Logger()
	if err != nil {
		if st.lastErr == nil || !sameKind(st.lastErr, err) {
			log.Warn().Err(err).Msg("image repository refresh failed")
		}
		st.lastErr, st.lastErrAt = err, now
		st.failures++
		backoff := min(s.maxInterval(st), s.opts.minInterval<<min(st.failures-1, 16))
		var re *images.RegistryError
		if errors.As(err, &re) && re.RetryAfter > backoff {
			backoff = re.RetryAfter
		}
		st.next = now.Add(jitter(backoff))
		return
	}
	if st.lastErr != nil {
		log.Info().Msg("image repository refresh works again")
	}
	first := st.scannedAt.IsZero()
	st.lastErr, st.failures = nil, 0
	st.scannedAt, st.tags = now, res.tags
	switch {
	case first:
		st.interval = s.opts.minInterval
	case res.changed:
		st.interval = max(s.opts.minInterval, st.interval/2)
	default:
		st.interval = min(s.maxInterval(st), st.interval*2)
	}
	if res.changed {
		st.changedAt = now
	}
	st.interval = min(st.interval, s.maxInterval(st))
	st.next = now.Add(jitter(st.interval))
	log.Debug().Int("tags", res.tags).Int("fetched", res.fetched).Int("rechecked", res.rechecks).
		Bool("changed", res.changed).Dur("took", now.Sub(start)).Dur("next", st.interval).
		Msg("image repository refreshed")
}

func (s *Scanner) maxInterval(st *repoState) time.Duration {
	if st.priority {
		return s.opts.priorityMax
	}
	return s.opts.maxInterval
}

func sameKind(a, b error) bool {
	for _, k := range []error{images.ErrUnauthorized, images.ErrNotFound, images.ErrRateLimited, images.ErrUnavailable, images.ErrBadResponse} {
		if errors.Is(a, k) {
			return errors.Is(b, k)
		}
	}
	return false
}

// jitter spreads refreshes by ±10%.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	return d + time.Duration((rand.Float64()-0.5)*0.2*float64(d))
}

// Images returns what the cache holds for a repository, with the IDs
// spelled as repo is. Its error matches images.ErrNotScanned when the
// repository has not been read yet (and, then, the cause of the last
// failed refresh, e.g. images.ErrUnauthorized), and images.ErrExcluded
// when an exclude pattern matches it. It never answers an empty list for
// a repository it knows nothing about.
func (s *Scanner) Images(ctx context.Context, repo string) (images.Repository, error) {
	r, err := s.reg.Resolve(repo)
	if err != nil {
		return images.Repository{}, err
	}
	if s.excluded(r) {
		return images.Repository{}, fmt.Errorf("%s: %w", r.Given, images.ErrExcluded)
	}
	rec, err := s.loadRepo(ctx, r.Name)
	if err != nil {
		return images.Repository{}, err
	}
	s.mu.Lock()
	var lastErr error
	var lastErrAt time.Time
	st, watched := s.repos[r.Name]
	if watched {
		lastErr, lastErrAt = st.lastErr, st.lastErrAt
		if rec == nil && !st.scannedAt.IsZero() && !st.scanning {
			// Scanned, then evicted from the cache: read it again now.
			st.next = time.Time{}
			s.hosts[r.Host].poke()
		}
	}
	s.mu.Unlock()
	if rec == nil {
		return images.Repository{}, &images.NotScannedError{Repo: r.Given, Cause: lastErr}
	}
	out := images.Repository{
		Name:      r.Given,
		Images:    make([]images.Info, 0, len(rec.Tags)),
		ScannedAt: rec.ScannedAt,
		Complete:  rec.Complete,
	}
	if lastErr != nil && lastErrAt.After(rec.ScannedAt) {
		out.LastError = lastErr
	}
	for _, t := range rec.Tags {
		out.Images = append(out.Images, t.info(r.Given))
	}
	return out, nil
}

// Status reports every watched repository, by name, and every registry
// host talked to.
func (s *Scanner) Status() images.Status {
	s.mu.Lock()
	st := images.Status{Repos: make([]images.RepoStatus, 0, len(s.repos)+len(s.invalid))}
	for _, r := range s.repos {
		st.Repos = append(st.Repos, images.RepoStatus{
			Name:        r.repo.Given,
			Canonical:   r.repo.Name,
			Host:        r.repo.Host,
			Priority:    r.priority,
			Excluded:    r.excluded,
			ScannedAt:   r.scannedAt,
			Tags:        r.tags,
			ChangedAt:   r.changedAt,
			NextScan:    r.next,
			Interval:    r.interval,
			LastError:   r.lastErr,
			LastErrorAt: r.lastErrAt,
		})
	}
	for name, err := range s.invalid {
		st.Repos = append(st.Repos, images.RepoStatus{Name: name, LastError: err})
	}
	s.mu.Unlock()
	slices.SortFunc(st.Repos, func(a, b images.RepoStatus) int { return strings.Compare(a.Name, b.Name) })
	st.Hosts = s.reg.Hosts()
	return st
}
