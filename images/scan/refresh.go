package scan

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/Masterminds/semver/v3"

	"github.com/fluxd/fluxd/images"
	"github.com/fluxd/fluxd/images/registry"
)

// refreshResult is what one refresh of a repository did.
type refreshResult struct {
	changed  bool // tags added, removed or moved
	tags     int  // tags in the repository
	fetched  int  // manifests read
	rechecks int  // HEAD requests made
}

// job is one tag to read: fetch its manifest, or, with known set, first
// check with a HEAD request whether it still points at known.Digest.
type job struct {
	tag   string
	known *tagRecord
}

type jobResult struct {
	tag       string
	rec       tagRecord
	unchanged bool // a recheck found the same digest
	fetched   bool
	err       error
}

// refresh reads a repository into the cache. A warm refresh of an
// unchanged repository costs one request: the tag list (one per 1000
// tags). Only tags not seen before are fetched, plus at most
// recheckBudget known tags whose manifest is older than tagMaxAge, which
// are checked with HEAD first. Progress is saved every checkpointEvery,
// and when the refresh fails part-way, so no tag is fetched twice.
func (s *Scanner) refresh(ctx context.Context, r registry.Repo) (refreshResult, error) {
	var res refreshResult
	prev, err := s.loadRepo(ctx, r.Name)
	if err != nil {
		return res, err
	}
	tags, err := s.reg.Tags(ctx, r)
	if err != nil {
		return res, err
	}
	now := time.Now()
	known := map[string]tagRecord{}
	if prev != nil {
		for _, t := range prev.Tags {
			known[t.Tag] = t
		}
	}

	rec := &repoRecord{Repo: r.Name, ScannedAt: now}
	index := map[string]int{} // tag -> position in rec.Tags
	var fresh []string
	var stale []tagRecord
	for _, tag := range tags {
		if _, dup := index[tag]; dup {
			continue
		}
		if k, ok := known[tag]; ok {
			index[tag] = len(rec.Tags)
			rec.Tags = append(rec.Tags, k)
			if s.due(k, now) {
				stale = append(stale, k)
			}
			continue
		}
		index[tag] = -1
		fresh = append(fresh, tag)
	}
	res.tags = len(index)
	res.changed = prev == nil || len(fresh) > 0 || len(rec.Tags) != len(prev.Tags)

	// Oldest first, within the budget.
	slices.SortFunc(stale, func(a, b tagRecord) int { return a.Fetched.Compare(b.Fetched) })
	stale = stale[:min(len(stale), s.opts.recheckBudget)]
	jobs := make([]job, 0, len(fresh)+len(stale))
	for i := range stale {
		jobs = append(jobs, job{tag: stale[i].Tag, known: &stale[i]})
	}
	newestFirst(fresh)
	for _, tag := range fresh {
		jobs = append(jobs, job{tag: tag})
	}

	pending := len(fresh)
	complete := func() bool { return pending == 0 }
	apply := func(jr jobResult) {
		switch {
		case jr.err != nil:
			return
		case jr.unchanged:
			rec.Tags[index[jr.tag]].Fetched = jr.rec.Fetched
			return
		}
		if jr.fetched {
			res.fetched++
		}
		if i := index[jr.tag]; i >= 0 {
			if rec.Tags[i].Digest != jr.rec.Digest {
				res.changed = true
			}
			rec.Tags[i] = jr.rec
		} else {
			index[jr.tag] = len(rec.Tags)
			rec.Tags = append(rec.Tags, jr.rec)
			pending--
		}
	}

	var fatal error
	if len(jobs) > 0 {
		fatal = s.runJobs(ctx, r, jobs, func(jr runResult) {
			if jr.known != nil {
				res.rechecks++
			}
			if errors.Is(jr.err, images.ErrNotFound) {
				// Deleted between the list and the read.
				s.drop(rec, index, jr.tag, &pending)
				res.changed = true
				return
			}
			apply(jr.jobResult)
		}, func() {
			rec.Complete = complete()
			if err := s.saveRepo(ctx, rec); err != nil {
				s.log.Warn().Err(err).Msg("could not save a refresh's progress")
			}
		})
	}
	rec.Complete = complete()
	if fatal != nil {
		// Save progress, but never a first record with nothing read: that
		// would answer an empty list for a repository not scanned yet.
		if res.fetched > 0 || (prev != nil && res.changed) {
			// Keep what was read; the rest is fetched next time.
			if err := s.saveRepo(context.WithoutCancel(ctx), rec); err != nil {
				s.log.Warn().Err(err).Msg("could not save a failed refresh's progress")
			}
		}
		return res, fatal
	}
	if err := s.saveRepo(ctx, rec); err != nil {
		return res, err
	}
	return res, nil
}

// errorRetryAge is how old a tag that could not be read (no digest, an
// error) gets before it is read again, within the recheck budget.
const errorRetryAge = time.Hour

// due reports whether a known tag is due for a recheck.
func (s *Scanner) due(t tagRecord, now time.Time) bool {
	age := now.Sub(t.Fetched)
	if t.Digest == "" && age >= errorRetryAge {
		return true
	}
	return s.opts.tagMaxAge > 0 && age >= s.opts.tagMaxAge
}

// drop removes a tag from the record being built.
func (s *Scanner) drop(rec *repoRecord, index map[string]int, tag string, pending *int) {
	i, ok := index[tag]
	if !ok {
		return
	}
	delete(index, tag)
	if i < 0 {
		*pending--
		return
	}
	rec.Tags = slices.Delete(rec.Tags, i, i+1)
	for t, j := range index {
		if j > i {
			index[t] = j - 1
		}
	}
}

type runResult struct {
	jobResult
	known *tagRecord
}

// runJobs reads tags with tagConcurrency workers. The results are applied
// by the calling goroutine alone, through apply, and checkpoint is called
// every checkpointEvery. The first error that is not about one tag alone
// (rate limit, registry down, credentials refused) stops the run and is
// returned.
func (s *Scanner) runJobs(ctx context.Context, r registry.Repo, jobs []job, apply func(runResult), checkpoint func()) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobc := make(chan job)
	results := make(chan runResult)
	var wg sync.WaitGroup
	for range min(s.opts.tagConcurrency, len(jobs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobc {
				jr := s.readTag(ctx, r, j)
				select {
				case results <- runResult{jobResult: jr, known: j.known}:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	go func() {
		defer close(jobc)
		for _, j := range jobs {
			select {
			case jobc <- j:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() {
		wg.Wait()
		close(results)
	}()

	tick := time.NewTicker(s.opts.checkpointEvery)
	defer tick.Stop()
	var fatal error
	for {
		select {
		case jr, ok := <-results:
			if !ok {
				if fatal == nil {
					fatal = ctx.Err()
				}
				return fatal
			}
			if jr.err != nil && !errors.Is(jr.err, images.ErrNotFound) {
				if fatal == nil {
					fatal = jr.err
					cancel()
				}
				continue
			}
			if fatal == nil {
				apply(jr)
			}
		case <-tick.C:
			if fatal == nil {
				checkpoint()
			}
		}
	}
}

// readTag reads one tag: a HEAD first for a known tag, then, for a new or
// moved tag, its manifest, and the image of its digest unless the cache
// has it. A tag the registry serves garbage for is recorded without a
// digest or date, to be read again after errorRetryAge.
func (s *Scanner) readTag(ctx context.Context, r registry.Repo, j job) jobResult {
	jr := jobResult{tag: j.tag}
	if j.known != nil && j.known.Digest != "" {
		d, err := s.reg.Head(ctx, r, j.tag)
		if err != nil {
			jr.err = err
			return jr
		}
		if d == j.known.Digest {
			jr.unchanged = true
			jr.rec.Fetched = time.Now()
			return jr
		}
	}
	unreadable := func(err error) jobResult {
		jr.fetched = true
		jr.rec = tagRecord{Tag: j.tag, Fetched: time.Now(), imageRecord: imageRecord{Err: err.Error()}}
		return jr
	}
	m, err := s.reg.Manifest(ctx, r, j.tag)
	if errors.Is(err, images.ErrBadResponse) {
		return unreadable(err)
	}
	if err != nil {
		jr.err = err
		return jr
	}
	img, err := s.image(ctx, m)
	if errors.Is(err, images.ErrBadResponse) {
		return unreadable(err)
	}
	if err != nil {
		jr.err = err
		return jr
	}
	jr.fetched = true
	jr.rec = tagRecord{Tag: j.tag, Digest: m.Digest, Fetched: m.Fetched, imageRecord: img}
	return jr
}

// image returns the image record of a manifest's digest: from the cache,
// else read once (concurrent readers of one digest share the read) and
// cached for good.
func (s *Scanner) image(ctx context.Context, m *registry.Manifest) (imageRecord, error) {
	if rec, ok := s.loadImage(ctx, m.Digest); ok {
		return rec, nil
	}
	s.flightMu.Lock()
	if f, ok := s.flights[m.Digest]; ok {
		s.flightMu.Unlock()
		select {
		case <-f.done:
			if f.err != nil && ctx.Err() == nil && (errors.Is(f.err, context.Canceled) || errors.Is(f.err, context.DeadlineExceeded)) {
				// The reader's refresh was cancelled, not ours: read it
				// ourselves.
				return s.image(ctx, m)
			}
			return f.rec, f.err
		case <-ctx.Done():
			return imageRecord{}, ctx.Err()
		}
	}
	f := &flight{done: make(chan struct{})}
	s.flights[m.Digest] = f
	s.flightMu.Unlock()

	f.rec, f.err = s.readImage(ctx, m)
	s.flightMu.Lock()
	delete(s.flights, m.Digest)
	s.flightMu.Unlock()
	close(f.done)
	return f.rec, f.err
}

type flight struct {
	done chan struct{}
	rec  imageRecord
	err  error
}

func (s *Scanner) readImage(ctx context.Context, m *registry.Manifest) (imageRecord, error) {
	if rec, ok := s.loadImage(ctx, m.Digest); ok {
		return rec, nil
	}
	img, err := s.reg.Image(ctx, m)
	var rec imageRecord
	switch {
	case err == nil:
		rec = imageRecord{ImageID: img.ImageID, CreatedAt: img.CreatedAt, LabelCreated: img.Labels.Created, BuildDate: img.Labels.BuildDate}
	case registry.IsPermanent(err):
		rec = imageRecord{Err: err.Error()}
	default:
		return imageRecord{}, err
	}
	s.saveImage(ctx, m.Digest, rec)
	return rec, nil
}

// newestFirst orders tags so that the likely newest are fetched first:
// versions from the highest, then the other tags in reverse order (date
// and build-number tags sort newest last).
func newestFirst(tags []string) {
	vs := make(map[string]*semver.Version, len(tags))
	for _, t := range tags {
		if v, err := semver.NewVersion(t); err == nil {
			vs[t] = v
		}
	}
	slices.SortStableFunc(tags, func(a, b string) int {
		va, vb := vs[a], vs[b]
		switch {
		case va != nil && vb != nil:
			if c := vb.Compare(va); c != 0 {
				return c
			}
		case va != nil:
			return -1
		case vb != nil:
			return 1
		}
		return strings.Compare(b, a)
	})
}
