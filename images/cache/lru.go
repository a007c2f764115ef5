package cache

import (
	"container/list"
	"context"
	"fmt"
	"sync"
)

// entryOverhead is what an LRU entry costs beyond its key and value bytes
// (list element, map entry, headers), counted against the bound.
const entryOverhead = 64

// LRU is an in-process cache bounded by bytes: when full, it evicts the
// least recently used entries. It is safe for concurrent use.
type LRU struct {
	max int

	mu    sync.Mutex
	size  int
	ll    *list.List // front: most recently used
	items map[string]*list.Element
}

type lruEntry struct {
	key   string
	value []byte
}

var _ Cache = (*LRU)(nil)

// NewLRU returns an LRU that holds at most maxBytes of keys, values and
// per-entry overhead. A value larger than that is refused with ErrTooLarge.
func NewLRU(maxBytes int) *LRU {
	return &LRU{max: maxBytes, ll: list.New(), items: map[string]*list.Element{}}
}

func entrySize(key string, value []byte) int {
	return len(key) + len(value) + entryOverhead
}

// Get returns a copy of the value under key, or ErrMiss.
func (c *LRU) Get(_ context.Context, key string) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[key]
	if !ok {
		return nil, ErrMiss
	}
	c.ll.MoveToFront(el)
	v := el.Value.(*lruEntry).value
	return append([]byte(nil), v...), nil
}

// Set stores a copy of value under key, evicting as needed.
func (c *LRU) Set(_ context.Context, key string, value []byte) error {
	n := entrySize(key, value)
	if n > c.max {
		return fmt.Errorf("%w: %d bytes under %q, the embedded cache holds %d", ErrTooLarge, len(value), key, c.max)
	}
	v := append([]byte(nil), value...)
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		e := el.Value.(*lruEntry)
		c.size += len(v) - len(e.value)
		e.value = v
		c.ll.MoveToFront(el)
	} else {
		c.items[key] = c.ll.PushFront(&lruEntry{key: key, value: v})
		c.size += n
	}
	for c.size > c.max {
		el := c.ll.Back()
		e := el.Value.(*lruEntry)
		c.ll.Remove(el)
		delete(c.items, e.key)
		c.size -= entrySize(e.key, e.value)
	}
	return nil
}

// Len is the number of entries.
func (c *LRU) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}

// Size is the number of bytes counted against the bound.
func (c *LRU) Size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.size
}
