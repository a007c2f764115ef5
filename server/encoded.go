package server

import "sync"

// encodedCache keeps the last few encoded answers by key, so a thousand
// identical list calls on unchanged state encode once.
type encodedCache struct {
	mu    sync.Mutex
	order []string
	byKey map[string][]byte
}

const encodedEntries = 32

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
	if _, ok := c.byKey[key]; ok {
		return
	}
	c.byKey[key] = b
	c.order = append(c.order, key)
	if len(c.order) > encodedEntries {
		delete(c.byKey, c.order[0])
		c.order = c.order[1:]
	}
}
