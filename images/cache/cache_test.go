package cache_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/rs/zerolog"

	"github.com/fluxd/fluxd/images/cache"
	"github.com/fluxd/fluxd/images/internal/mctest"
)

var ctx = context.Background()

func mustGet(t *testing.T, c cache.Cache, key string) []byte {
	t.Helper()
	v, err := c.Get(ctx, key)
	if err != nil {
		t.Fatalf("get %q: %v", key, err)
	}
	return v
}

func wantMiss(t *testing.T, c cache.Cache, key string) {
	t.Helper()
	if v, err := c.Get(ctx, key); !errors.Is(err, cache.ErrMiss) {
		t.Fatalf("get %q: want a miss, got %d bytes, %v", key, len(v), err)
	}
}

func TestLRUBoundedByBytes(t *testing.T) {
	// Each entry: 1-byte key + 100-byte value + overhead.
	per := 1 + 100 + 64
	c := cache.NewLRU(3 * per)
	val := func(b byte) []byte { return bytes.Repeat([]byte{b}, 100) }
	for _, k := range []string{"a", "b", "c"} {
		if err := c.Set(ctx, k, val(k[0])); err != nil {
			t.Fatal(err)
		}
	}
	if c.Len() != 3 || c.Size() != 3*per {
		t.Fatalf("len %d size %d, want 3 and %d", c.Len(), c.Size(), 3*per)
	}
	mustGet(t, c, "a") // a is now the most recently used; b the least
	if err := c.Set(ctx, "d", val('d')); err != nil {
		t.Fatal(err)
	}
	wantMiss(t, c, "b")
	for _, k := range []string{"a", "c", "d"} {
		if v := mustGet(t, c, k); !bytes.Equal(v, val(k[0])) {
			t.Fatalf("%q: wrong value", k)
		}
	}
	if c.Size() > 3*per {
		t.Fatalf("size %d over the bound %d", c.Size(), 3*per)
	}

	// Replacing a value re-counts its size; a bigger value evicts more.
	if err := c.Set(ctx, "a", bytes.Repeat([]byte{'A'}, 200)); err != nil {
		t.Fatal(err)
	}
	if c.Size() > 3*per {
		t.Fatalf("size %d over the bound %d", c.Size(), 3*per)
	}
	if v := mustGet(t, c, "a"); len(v) != 200 {
		t.Fatalf("a: %d bytes", len(v))
	}

	// Too large for the whole cache: refused, nothing evicted.
	before := c.Len()
	if err := c.Set(ctx, "huge", make([]byte, 3*per)); !errors.Is(err, cache.ErrTooLarge) {
		t.Fatalf("want ErrTooLarge, got %v", err)
	}
	if c.Len() != before {
		t.Fatalf("a refused value evicted entries")
	}

	// The cache holds copies.
	buf := []byte("mutable")
	_ = c.Set(ctx, "m", buf)
	buf[0] = 'X'
	got := mustGet(t, c, "m")
	got[1] = 'Y'
	if v := mustGet(t, c, "m"); string(v) != "mutable" {
		t.Fatalf("the cache shares memory with callers: %q", v)
	}
}

func TestLRUConcurrent(t *testing.T) {
	c := cache.NewLRU(64 << 10)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				k := fmt.Sprintf("k%d", (g*31+i)%97)
				_ = c.Set(ctx, k, make([]byte, i%300))
				_, _ = c.Get(ctx, k)
			}
		}()
	}
	wg.Wait()
	if c.Size() > 64<<10 {
		t.Fatalf("size %d over the bound", c.Size())
	}
}

func TestPrefixVersionsKeys(t *testing.T) {
	lru := cache.NewLRU(1 << 20)
	v1 := cache.WithPrefix(lru, cache.KeyPrefix)
	if err := v1.Set(ctx, "repo/x", []byte("one")); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, lru, "fluxd/v1/repo/x"); string(got) != "one" {
		t.Fatalf("stored under the wrong key: %q", got)
	}
	// A later format reads nothing of v1's bytes.
	v2 := cache.WithPrefix(lru, "fluxd/v2/")
	wantMiss(t, v2, "repo/x")
}

func TestChunkedSplitsAndJoins(t *testing.T) {
	lru := cache.NewLRU(16 << 20)
	const size = 1000
	c := cache.NewChunked(lru, size)
	for _, n := range []int{0, 1, size - 1, size, size + 1, 3*size - 1, 3 * size, 10*size + 7} {
		v := bytes.Repeat([]byte{byte(n)}, n)
		for i := range v {
			v[i] = byte(i * 7)
		}
		key := fmt.Sprintf("v%d", n)
		if err := c.Set(ctx, key, v); err != nil {
			t.Fatal(err)
		}
		if got := mustGet(t, c, key); !bytes.Equal(got, v) {
			t.Fatalf("%d bytes: round trip differs", n)
		}
	}
	// Every item in the underlying cache is within the chunk size (plus
	// the head's marker).
	lru2 := cache.NewLRU(16 << 20)
	spy := &sizeSpy{Cache: lru2}
	c2 := cache.NewChunked(spy, size)
	if err := c2.Set(ctx, "big", make([]byte, 10*size+7)); err != nil {
		t.Fatal(err)
	}
	if spy.max > size || spy.sets != 12 {
		t.Fatalf("largest item %d (limit %d), %d items (want 11 chunks + head)", spy.max, size, spy.sets)
	}
}

type sizeSpy struct {
	cache.Cache
	mu        sync.Mutex
	max, sets int
	keys      []string
}

func (s *sizeSpy) Set(ctx context.Context, key string, v []byte) error {
	s.mu.Lock()
	s.max = max(s.max, len(v))
	s.sets++
	s.keys = append(s.keys, key)
	s.mu.Unlock()
	return s.Cache.Set(ctx, key, v)
}

func TestChunkedEvictedChunkIsAMiss(t *testing.T) {
	lru := cache.NewLRU(1 << 20)
	spy := &sizeSpy{Cache: lru}
	c := cache.NewChunked(spy, 100)
	if err := c.Set(ctx, "k", make([]byte, 450)); err != nil {
		t.Fatal(err)
	}
	// Overwrite one chunk with other bytes, as if a different write had
	// landed there: the sum no longer matches.
	if err := lru.Set(ctx, spy.keys[2], make([]byte, 99)); err != nil {
		t.Fatal(err)
	}
	wantMiss(t, c, "k")

	// Evict a chunk: fill the LRU with other entries.
	small := cache.NewLRU(2000)
	spy = &sizeSpy{Cache: small}
	c = cache.NewChunked(spy, 300)
	if err := c.Set(ctx, "k", make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	if len(mustGet(t, c, "k")) != 1000 {
		t.Fatal("round trip")
	}
	_ = small.Set(ctx, "other", make([]byte, 900)) // evicts the oldest chunks
	wantMiss(t, c, "k")
}

// TestChunkedRepoOf5000Tags stores a record the size of a repository with
// 5,000 tags in a real memcached, whose items are limited to 1 MB.
func TestChunkedRepoOf5000Tags(t *testing.T) {
	mc := mctest.Start(t)
	m := cache.NewMemcached(mc.Addr)
	defer m.Close()

	var b strings.Builder
	b.WriteString(`{"v":1,"repo":"index.docker.io/library/big","tags":[`)
	for i := range 5000 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"t":"1.%d.0","d":"sha256:%064x","f":"2026-01-01T00:00:00Z","i":"sha256:%064x","c":"2025-12-01T00:00:00Z"}`, i, i, i+1)
	}
	b.WriteString("]}")
	value := []byte(b.String())
	if len(value) <= cache.MemcachedMaxItem {
		t.Fatalf("test record of %d bytes does not exceed memcached's item size", len(value))
	}
	t.Logf("record of 5000 tags: %d bytes", len(value))

	// Unchunked, memcached cannot take it.
	if err := m.Set(ctx, "fluxd/v1/repo/big", value); !errors.Is(err, cache.ErrTooLarge) {
		t.Fatalf("want ErrTooLarge from memcached, got %v", err)
	}
	c := cache.NewChunked(cache.WithPrefix(m, cache.KeyPrefix), cache.DefaultChunkSize)
	if err := c.Set(ctx, "repo/big", value); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, c, "repo/big"); !bytes.Equal(got, value) {
		t.Fatal("round trip through memcached differs")
	}
}

func TestMemcachedKeys(t *testing.T) {
	mc := mctest.Start(t)
	m := cache.NewMemcached(mc.Addr)
	defer m.Close()
	long := "fluxd/v1/repo/" + strings.Repeat("x", 300)
	spaced := "fluxd/v1/a key with spaces"
	for _, k := range []string{long, spaced, "plain"} {
		if err := m.Set(ctx, k, []byte(k)); err != nil {
			t.Fatalf("%q: %v", k, err)
		}
	}
	for _, k := range []string{long, spaced, "plain"} {
		if got := mustGet(t, m, k); string(got) != k {
			t.Fatalf("%q: got %q", k, got)
		}
	}
	wantMiss(t, m, "absent")
}

func TestMemcachedDownIsUnavailable(t *testing.T) {
	mc := mctest.Start(t)
	m := cache.NewMemcached(mc.Addr)
	defer m.Close()
	mc.Kill()
	if _, err := m.Get(ctx, "k"); !errors.Is(err, cache.ErrUnavailable) {
		t.Fatalf("get from a dead memcached: want ErrUnavailable, got %v", err)
	}
	if err := m.Set(ctx, "k", []byte("v")); !errors.Is(err, cache.ErrUnavailable) {
		t.Fatalf("set to a dead memcached: want ErrUnavailable, got %v", err)
	}
	if err := m.Ping(ctx); !errors.Is(err, cache.ErrUnavailable) {
		t.Fatalf("ping a dead memcached: want ErrUnavailable, got %v", err)
	}
}

type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) count(level string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), `"level":"`+level+`"`)
}

// TestFallbackDegradesAndRecovers kills memcached mid-test: the cache keeps
// working from the embedded LRU with one warning, and goes back to
// memcached once it answers again.
func TestFallbackDegradesAndRecovers(t *testing.T) {
	mc := mctest.Start(t)
	m := cache.NewMemcached(mc.Addr)
	defer m.Close()
	logs := &logBuf{}
	f := cache.NewFallback(m, cache.NewLRU(1<<20), zerolog.New(logs), 100*time.Millisecond)
	raw := memcache.New(mc.Addr)

	if err := f.Set(ctx, "a", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if it, err := raw.Get("a"); err != nil || string(it.Value) != "1" {
		t.Fatalf("memcached does not hold what was set: %v", err)
	}

	mc.Kill()
	for i := range 20 {
		if got := mustGet(t, f, "a"); string(got) != "1" {
			t.Fatalf("a: %q", got)
		}
		if err := f.Set(ctx, fmt.Sprintf("down%d", i), []byte("2")); err != nil {
			t.Fatalf("set while memcached is down: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if down, _ := f.Down(); !down {
		t.Fatal("memcached is dead but the cache does not say it is down")
	}
	if n := logs.count("warn"); n != 1 {
		t.Fatalf("%d warnings, want exactly 1:\n%s", n, logs.b.String())
	}

	mc.Restart()
	raw = memcache.New(mc.Addr)
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, _ = f.Get(ctx, "a") // drives the probe
		if down, _ := f.Down(); !down {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the cache did not go back to memcached")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if logs.count("info") != 1 {
		t.Fatalf("want one recovery message:\n%s", logs.b.String())
	}
	// Writes reach memcached again.
	if err := f.Set(ctx, "b", []byte("3")); err != nil {
		t.Fatal(err)
	}
	if it, err := raw.Get("b"); err != nil || string(it.Value) != "3" {
		t.Fatalf("memcached does not hold what was set after recovery: %v", err)
	}
	// What was written while it was down (memcached restarted empty) is
	// still read, from the LRU, and copied back to memcached.
	if got := mustGet(t, f, "down3"); string(got) != "2" {
		t.Fatalf("down3: %q", got)
	}
	if it, err := raw.Get("down3"); err != nil || string(it.Value) != "2" {
		t.Fatalf("a local hit was not written back to memcached: %v", err)
	}
}

// TestMemcachedRestartBetweenCalls: pooled connections to a memcached
// that restarted are dropped without failing the call.
func TestMemcachedRestartBetweenCalls(t *testing.T) {
	mc := mctest.Start(t)
	m := cache.NewMemcached(mc.Addr)
	defer m.Close()
	if err := m.Set(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	mc.Kill()
	mc.Restart()
	wantMiss(t, m, "k") // restarted empty; not "unavailable"
	if err := m.Set(ctx, "k", []byte("v2")); err != nil {
		t.Fatal(err)
	}
}
