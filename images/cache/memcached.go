package cache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
)

// MemcachedMaxItem is the largest item memcached stores by default (-I 1m),
// key and item header included. Memcached refuses larger values before
// they are sent; NewChunked splits values to stay under it.
const MemcachedMaxItem = 1 << 20

// memcachedItemOverhead leaves room for memcached's per-item header.
const memcachedItemOverhead = 512

// Memcached is a Cache in one or more memcached servers.
type Memcached struct {
	servers []string
	list    *memcache.ServerList
	client  *memcache.Client
}

var _ Cache = (*Memcached)(nil)

// NewMemcached returns a cache in the memcached servers at addrs
// ("host:port"). Nothing is dialled yet, and a name that does not resolve
// yet is resolved again by Ping, so memcached may start after fluxd.
// Each call is bounded by a 500 ms socket timeout.
func NewMemcached(addrs ...string) *Memcached {
	list := new(memcache.ServerList)
	_ = list.SetServers(addrs...) // re-resolved by Ping
	client := memcache.NewFromSelector(list)
	client.Timeout = 500 * time.Millisecond
	client.MaxIdleConns = 8
	return &Memcached{servers: addrs, list: list, client: client}
}

// key maps a key to a legal memcached key: at most 250 bytes without
// spaces or control characters. Other keys are replaced by a hash.
func memcachedKey(key string) string {
	legal := len(key) <= 250
	for i := 0; legal && i < len(key); i++ {
		if key[i] <= ' ' || key[i] == 0x7f {
			legal = false
		}
	}
	if legal {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return "fluxd/sha256/" + hex.EncodeToString(sum[:])
}

// Get reads key from memcached.
func (m *Memcached) Get(ctx context.Context, key string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	k := memcachedKey(key)
	it, err := m.client.Get(k)
	if stale(err) {
		it, err = m.client.Get(k)
	}
	if err != nil {
		return nil, m.classify("get", key, err)
	}
	return it.Value, nil
}

// Set writes key to memcached, with no expiry.
func (m *Memcached) Set(ctx context.Context, key string, value []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	k := memcachedKey(key)
	if len(k)+len(value)+memcachedItemOverhead > MemcachedMaxItem {
		return fmt.Errorf("%w: %d bytes under %q, memcached takes at most %d per item", ErrTooLarge, len(value), key, MemcachedMaxItem)
	}
	err := m.client.Set(&memcache.Item{Key: k, Value: value})
	if stale(err) {
		err = m.client.Set(&memcache.Item{Key: k, Value: value})
	}
	if err != nil {
		return m.classify("set", key, err)
	}
	return nil
}

// Ping resolves the server names again and checks that every server
// answers; it is how Fallback finds that memcached is back.
func (m *Memcached) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := m.list.SetServers(m.servers...); err != nil {
		return fmt.Errorf("memcached %v: %w: %v", m.servers, ErrUnavailable, err)
	}
	if err := m.client.Ping(); err != nil {
		return m.classify("ping", "", err)
	}
	return nil
}

// Close closes idle connections.
func (m *Memcached) Close() error { return m.client.Close() }

// stale reports an error of a pooled connection that memcached closed (it
// restarted): the call is worth one more try, on a new connection.
func stale(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func (m *Memcached) classify(op, key string, err error) error {
	if errors.Is(err, memcache.ErrCacheMiss) {
		return ErrMiss
	}
	var (
		netErr     net.Error
		connectErr *memcache.ConnectTimeoutError
	)
	if errors.As(err, &netErr) || errors.As(err, &connectErr) ||
		errors.Is(err, memcache.ErrNoServers) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return fmt.Errorf("memcached %v: %s %q: %w: %v", m.servers, op, key, ErrUnavailable, err)
	}
	return fmt.Errorf("memcached %v: %s %q: %w", m.servers, op, key, err)
}
