package server

import "sync"

// encodedCache keeps the last few encoded answers by key, so a thousand
// identical list calls on unchanged state encode once. It holds at most
// encodedEntries answers and encodedBytes bytes, dropping the oldest.
type encodedCache struct {
	mu    sync.Mutex
	order []string
	byKey map[string][]byte
	size  int
}

const (
	encodedEntries = 32
	encodedBytes   = 64 << 20
)

func (c *encodedCache) get(key string) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.byKey[key]
	return b, ok
}

func (c *encodedCache) put(key string, b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byKey == nil {
		c.byKey = map[string][]byte{}
	}
	if _, ok := c.byKey[key]; ok || len(b) > encodedBytes/2 {
		return
	}
	c.byKey[key] = b
	c.size += len(b)
	c.order = append(c.order, key)
	for len(c.order) > encodedEntries || c.size > encodedBytes {
		c.size -= len(c.byKey[c.order[0]])
		delete(c.byKey, c.order[0])
		c.order = c.order[1:]
	}
}
