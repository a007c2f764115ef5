package scan

import (
	"fmt"
	"path"
	"time"

	"github.com/rs/zerolog"

	"github.com/fluxd/fluxd/images/cache"
)

// Defaults of the options.
const (
	DefaultMinInterval         = time.Minute
	DefaultMaxInterval         = 15 * time.Minute
	DefaultPriorityMaxInterval = 5 * time.Minute
	DefaultHostConcurrency     = 2
	DefaultTagConcurrency      = 8
	DefaultTagMaxAge           = 24 * time.Hour
	DefaultRecheckBudget       = 20
	DefaultCheckpointEvery     = 30 * time.Second
	DefaultScanTimeout         = 15 * time.Minute
)

// Option configures a Scanner.
type Option func(*options) error

type options struct {
	minInterval, maxInterval, priorityMax time.Duration
	exclude                               []string
	hostConcurrency, tagConcurrency       int
	tagMaxAge                             time.Duration
	recheckBudget                         int
	checkpointEvery                       time.Duration
	scanTimeout                           time.Duration
	chunkSize                             int
	log                                   zerolog.Logger
}

func defaultOptions() options {
	return options{
		minInterval:     DefaultMinInterval,
		maxInterval:     DefaultMaxInterval,
		priorityMax:     DefaultPriorityMaxInterval,
		hostConcurrency: DefaultHostConcurrency,
		tagConcurrency:  DefaultTagConcurrency,
		tagMaxAge:       DefaultTagMaxAge,
		recheckBudget:   DefaultRecheckBudget,
		checkpointEvery: DefaultCheckpointEvery,
		scanTimeout:     DefaultScanTimeout,
		chunkSize:       cache.DefaultChunkSize,
		log:             zerolog.Nop(),
	}
}

// WithIntervals bounds the adaptive refresh interval of a repository: it
// starts at min, halves (down to min) when a refresh finds the tags
// changed and doubles (up to max) when not. Repositories in the priority
// set are refreshed at least every priorityMax (when it is below max).
// Defaults 1m, 15m and 5m.
func WithIntervals(min, max, priorityMax time.Duration) Option {
	return func(o *options) error {
		if min <= 0 || max < min || priorityMax < min {
			return fmt.Errorf("refresh intervals: want 0 < min (%s) <= max (%s) and min <= priority max (%s)", min, max, priorityMax)
		}
		o.minInterval, o.maxInterval, o.priorityMax = min, max, priorityMax
		return nil
	}
}

// WithExclude skips repositories matching any of the glob patterns
// (path.Match syntax) against the repository as named, or its canonical
// name: "k8s.gcr.io/*", "index.docker.io/library/*" (--registry-exclude-image).
func WithExclude(patterns ...string) Option {
	return func(o *options) error {
		for _, p := range patterns {
			if _, err := path.Match(p, ""); err != nil {
				return fmt.Errorf("exclude pattern %q: %w", p, err)
			}
		}
		o.exclude = append(o.exclude, patterns...)
		return nil
	}
}

// WithConcurrency sets how many repositories of one host are refreshed at
// once (default 2), and how many tags of one repository are fetched at
// once (default 8). The host's rate limit applies to all of them together.
func WithConcurrency(perHost, perRepo int) Option {
	return func(o *options) error {
		if perHost < 1 || perRepo < 1 {
			return fmt.Errorf("concurrency: want at least 1 per host and 1 per repository, not %d and %d", perHost, perRepo)
		}
		o.hostConcurrency, o.tagConcurrency = perHost, perRepo
		return nil
	}
}

// WithTagRecheck sets how old a tag's manifest may get before a refresh
// checks (with a HEAD request) that the tag still points at the same
// digest, and how many such checks one refresh may make. Until then a
// known tag costs no request: an unchanged repository costs one request
// (the tag list) per refresh. maxAge 0 turns the checks off. Defaults 24h
// and 20.
func WithTagRecheck(maxAge time.Duration, budget int) Option {
	return func(o *options) error {
		if maxAge < 0 || budget < 0 {
			return fmt.Errorf("tag recheck: want a max age and budget >= 0, not %s and %d", maxAge, budget)
		}
		o.tagMaxAge, o.recheckBudget = maxAge, budget
		return nil
	}
}

// WithCheckpoint sets how often a long refresh saves its progress, so
// that the tags fetched so far can be listed and are not fetched again
// after a failure. Default 30s.
func WithCheckpoint(every time.Duration) Option {
	return func(o *options) error {
		if every <= 0 {
			return fmt.Errorf("checkpoint interval must be above 0, not %s", every)
		}
		o.checkpointEvery = every
		return nil
	}
}

// WithScanTimeout bounds one refresh of one repository. Default 15m.
func WithScanTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("scan timeout must be above 0, not %s", d)
		}
		o.scanTimeout = d
		return nil
	}
}

// WithChunkSize sets the largest cache item the scanner writes (default
// cache.DefaultChunkSize, under memcached's 1 MB).
func WithChunkSize(n int) Option {
	return func(o *options) error {
		if n < 1024 {
			return fmt.Errorf("chunk size %d: want at least 1024", n)
		}
		o.chunkSize = n
		return nil
	}
}

// WithLogger sets the logger.
func WithLogger(l zerolog.Logger) Option {
	return func(o *options) error {
		o.log = l
		return nil
	}
}
