package cache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
)

// DefaultChunkSize keeps every item well under memcached's 1 MB limit.
const DefaultChunkSize = MemcachedMaxItem - 4<<10

// Chunked is a Cache that stores values of any size in an underlying cache
// with an item size limit, by splitting large values into chunks.
//
// A value that fits is stored under its key, after a one-byte marker. A
// larger one is stored as chunks under "<key>#<sum>/<i>", where <sum> is
// (a prefix of) the value's sha256, and then a small head under the key
// naming the chunks, their total length and the full sum. Chunks are
// written before the head, and a reader checks the sum, so a reader never
// sees a mix of two writes, and a value one of whose chunks was evicted
// reads as a miss.
type Chunked struct {
	c    Cache
	size int
}

var _ Cache = (*Chunked)(nil)

const (
	markInline  = 'v'
	markChunked = 'c'
)

type chunkHead struct {
	N   int    `json:"n"`
	Len int    `json:"len"`
	Sum string `json:"sum"`
}

// NewChunked returns a Cache that splits values into chunks of at most
// chunkSize bytes (markers included) in c. chunkSize <= 0 means
// DefaultChunkSize.
func NewChunked(c Cache, chunkSize int) *Chunked {
	if chunkSize <= 0 {
		chunkSize = DefaultChunkSize
	}
	if chunkSize < 2 {
		chunkSize = 2
	}
	return &Chunked{c: c, size: chunkSize}
}

func chunkKey(key, sum string, i int) string {
	return fmt.Sprintf("%s#%s/%d", key, sum[:16], i)
}

// Get reads a value, joining its chunks. A missing or corrupt chunk is a
// miss.
func (c *Chunked) Get(ctx context.Context, key string) ([]byte, error) {
	v, err := c.c.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	if len(v) == 0 {
		return nil, fmt.Errorf("%q: %w (empty item)", key, ErrMiss)
	}
	switch v[0] {
	case markInline:
		return v[1:], nil
	case markChunked:
	default:
		return nil, fmt.Errorf("%q: %w (unknown item format)", key, ErrMiss)
	}
	var head chunkHead
	if err := json.Unmarshal(v[1:], &head); err != nil || head.N <= 0 || len(head.Sum) < 16 {
		return nil, fmt.Errorf("%q: %w (bad chunk head)", key, ErrMiss)
	}
	buf := bytes.NewBuffer(make([]byte, 0, head.Len))
	for i := 0; i < head.N; i++ {
		part, err := c.c.Get(ctx, chunkKey(key, head.Sum, i))
		if err != nil {
			if errors.Is(err, ErrMiss) {
				return nil, fmt.Errorf("%q: chunk %d of %d evicted: %w", key, i, head.N, ErrMiss)
			}
			return nil, err
		}
		buf.Write(part)
	}
	sum := sha256.Sum256(buf.Bytes())
	if buf.Len() != head.Len || hex.EncodeToString(sum[:]) != head.Sum {
		return nil, fmt.Errorf("%q: %w (chunks do not match their head)", key, ErrMiss)
	}
	return buf.Bytes(), nil
}

// Set stores a value, in chunks when it does not fit in one item.
func (c *Chunked) Set(ctx context.Context, key string, value []byte) error {
	if len(value)+1 <= c.size {
		item := make([]byte, 0, len(value)+1)
		item = append(item, markInline)
		return c.c.Set(ctx, key, append(item, value...))
	}
	s := sha256.Sum256(value)
	head := chunkHead{Len: len(value), Sum: hex.EncodeToString(s[:])}
	for off := 0; off < len(value); off += c.size {
		end := min(off+c.size, len(value))
		if err := c.c.Set(ctx, chunkKey(key, head.Sum, head.N), value[off:end]); err != nil {
			return fmt.Errorf("%q: chunk %d: %w", key, head.N, err)
		}
		head.N++
	}
	hb, err := json.Marshal(head)
	if err != nil {
		return err
	}
	return c.c.Set(ctx, key, append([]byte{markChunked}, hb...))
}
