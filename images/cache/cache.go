// Package cache stores what the image scanner reads from registries: in
// memcached (when --memcached is set) or in an embedded, bytes-bounded LRU.
//
// Compose them as the daemon does:
//
//	var c cache.Cache = cache.NewLRU(cache.DefaultLRUSize)
//	if addr != "" { // --memcached
//		c = cache.NewFallback(cache.NewMemcached(addr), c, log, 0)
//	}
//	scanner, err := scan.New(registryClient, c, ...)
//
// The scanner wraps the cache with WithPrefix(KeyPrefix) (versioned keys)
// and NewChunked (values of any size under memcached's 1 MB items); an
// unreachable memcached degrades to the LRU until it answers again.
package cache

import (
	"context"
	"errors"
)

// Cache is a byte store with no expiry of its own: entries live until
// evicted.
type Cache interface {
	// Get returns the value stored under key, or an error matching ErrMiss
	// when there is none.
	Get(ctx context.Context, key string) ([]byte, error)
	// Set stores value under key. The cache keeps its own copy.
	Set(ctx context.Context, key string, value []byte) error
}

var (
	// ErrMiss is matched by Get's error when the key holds nothing.
	ErrMiss = errors.New("cache miss")
	// ErrUnavailable is matched by the errors of a cache that cannot be
	// reached (memcached down); Fallback switches over on it.
	ErrUnavailable = errors.New("cache unavailable")
	// ErrTooLarge is matched when a value is larger than the cache takes.
	ErrTooLarge = errors.New("value too large for the cache")
)

// DefaultLRUSize is a sensible bound for the embedded cache: room for a few
// hundred repositories of a thousand tags.
const DefaultLRUSize = 64 << 20

// KeyPrefix versions every key fluxd stores: when the format of a value
// changes, the version changes and old bytes are never read.
const KeyPrefix = "fluxd/v1/"

type prefixed struct {
	c      Cache
	prefix string
}

// WithPrefix returns a Cache that puts prefix in front of every key.
func WithPrefix(c Cache, prefix string) Cache {
	return &prefixed{c: c, prefix: prefix}
}

func (p *prefixed) Get(ctx context.Context, key string) ([]byte, error) {
	return p.c.Get(ctx, p.prefix+key)
}

func (p *prefixed) Set(ctx context.Context, key string, value []byte) error {
	return p.c.Set(ctx, p.prefix+key, value)
}
