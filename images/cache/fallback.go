package cache

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Pinger is implemented by caches that can check they are reachable
// (Memcached). Fallback uses it to probe a primary that went away.
type Pinger interface {
	Ping(ctx context.Context) error
}

// DefaultProbeInterval is how often Fallback probes a primary that is down.
const DefaultProbeInterval = 10 * time.Second

// Fallback is a two-tier cache: a shared primary (memcached) in front of a
// local cache (the embedded LRU).
//
//   - Set writes to both, so the local tier holds what this process wrote
//     recently.
//   - Get reads the primary; on a miss there (memcached restarted, an item
//     evicted) it reads the local tier and copies a hit back to the
//     primary, so a memcached restart costs no registry requests.
//   - When the primary is unreachable (an error matching ErrUnavailable),
//     Fallback logs one warning and serves from the local tier alone,
//     probing the primary every probe interval, in the background, on the
//     next call after it; when a probe succeeds it logs that and uses the
//     primary again.
type Fallback struct {
	primary, local Cache
	log            zerolog.Logger
	probeEvery     time.Duration

	mu        sync.Mutex
	down      bool
	downErr   error
	lastProbe time.Time
	probing   bool
}

var _ Cache = (*Fallback)(nil)

// NewFallback returns a cache that uses primary and degrades to local.
// probeEvery <= 0 means DefaultProbeInterval.
func NewFallback(primary, local Cache, log zerolog.Logger, probeEvery time.Duration) *Fallback {
	if probeEvery <= 0 {
		probeEvery = DefaultProbeInterval
	}
	return &Fallback{primary: primary, local: local, log: log, probeEvery: probeEvery}
}

// Get reads the primary, else the local tier.
func (f *Fallback) Get(ctx context.Context, key string) ([]byte, error) {
	if f.usePrimary(ctx) {
		v, err := f.primary.Get(ctx, key)
		switch {
		case err == nil:
			return v, nil
		case errors.Is(err, ErrMiss):
			v, lerr := f.local.Get(ctx, key)
			if lerr != nil {
				return nil, err
			}
			if serr := f.primary.Set(ctx, key, v); serr != nil {
				f.failed(serr)
			}
			return v, nil
		case errors.Is(err, ErrUnavailable):
			f.failed(err)
		case ctx.Err() != nil:
			return nil, err
		}
	}
	return f.local.Get(ctx, key)
}

// Set writes to the local tier and, when it is up, the primary.
func (f *Fallback) Set(ctx context.Context, key string, value []byte) error {
	lerr := f.local.Set(ctx, key, value)
	if !f.usePrimary(ctx) {
		return lerr
	}
	if err := f.primary.Set(ctx, key, value); err != nil {
		if errors.Is(err, ErrUnavailable) {
			f.failed(err)
			return lerr
		}
		return err
	}
	return nil
}

// Down reports whether the primary is considered unreachable, and why.
func (f *Fallback) Down() (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.down, f.downErr
}

// usePrimary says whether to try the primary; while it is down it starts
// a probe when one is due.
func (f *Fallback) usePrimary(ctx context.Context) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.down {
		return true
	}
	if !f.probing && time.Since(f.lastProbe) >= f.probeEvery {
		f.probing = true
		f.lastProbe = time.Now()
		go f.probe(context.WithoutCancel(ctx))
	}
	return false
}

func (f *Fallback) failed(err error) {
	if !errors.Is(err, ErrUnavailable) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return
	}
	f.down, f.downErr, f.lastProbe = true, err, time.Now()
	f.log.Warn().Err(err).Dur("probe_interval", f.probeEvery).
		Msg("memcached unreachable: using the embedded cache until it answers again")
}

func (f *Fallback) probe(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var err error
	if p, ok := f.primary.(Pinger); ok {
		err = p.Ping(ctx)
	} else if _, err = f.primary.Get(ctx, KeyPrefix+"probe"); errors.Is(err, ErrMiss) {
		err = nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.probing = false
	if err != nil {
		f.downErr = err
		return
	}
	f.down, f.downErr = false, nil
	f.log.Info().Msg("memcached answers again: using it")
}
