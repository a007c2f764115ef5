package scan

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/fluxd/fluxd/images"
	"github.com/fluxd/fluxd/images/cache"
)

// The cache holds two kinds of record, under versioned keys (the cache is
// wrapped with cache.KeyPrefix, "fluxd/v1/"):
//
//	repo/<canonical repository>        -> repoRecord (JSON, chunked when large)
//	image/<platform>/<manifest digest> -> imageRecord (JSON)
//
// An image record is a fact about content-addressed bytes, so it never
// goes stale: it is written once per digest and read by every tag, in any
// repository, that points at the digest.
const recordVersion = 1

func repoKey(canonical string) string { return "repo/" + canonical }

func imageKey(platform, digest string) string { return "image/" + platform + "/" + digest }

// repoRecord is what a refresh found in one repository.
type repoRecord struct {
	V         int         `json:"v"`
	Repo      string      `json:"repo"`
	ScannedAt time.Time   `json:"scanned"`
	Complete  bool        `json:"complete"`
	Tags      []tagRecord `json:"tags"`
}

// tagRecord is one tag: the digest it pointed at when last read, and the
// image record of that digest.
type tagRecord struct {
	Tag     string    `json:"t"`
	Digest  string    `json:"d,omitempty"`
	Fetched time.Time `json:"f"`
	imageRecord
}

// imageRecord is what fluxd keeps of the image a manifest digest stands
// for, for one platform.
type imageRecord struct {
	ImageID      string    `json:"i,omitempty"`
	CreatedAt    time.Time `json:"c,omitzero"`
	LabelCreated time.Time `json:"lc,omitzero"`
	BuildDate    time.Time `json:"lb,omitzero"`
	// Err says why there is no datable image: no image for the platform
	// or an unsupported manifest (a fact about the digest, cached with
	// it), or, in a tag record without a digest, a manifest or config the
	// registry served unreadable. Such tags are listed without a creation
	// time.
	Err string `json:"e,omitempty"`
}

func (t tagRecord) info(repo string) images.Info {
	return images.Info{
		ID:          repo + ":" + t.Tag,
		Digest:      t.Digest,
		ImageID:     t.ImageID,
		Labels:      images.Labels{BuildDate: t.BuildDate, Created: t.LabelCreated},
		CreatedAt:   t.CreatedAt,
		LastFetched: t.Fetched,
	}
}

// loadRepo reads a repository's record; nil, nil when there is none (or
// it is unreadable, e.g. written by another format).
func (s *Scanner) loadRepo(ctx context.Context, canonical string) (*repoRecord, error) {
	b, err := s.cache.Get(ctx, repoKey(canonical))
	if errors.Is(err, cache.ErrMiss) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: reading the image cache: %w", canonical, err)
	}
	var rec repoRecord
	if err := json.Unmarshal(b, &rec); err != nil || rec.V != recordVersion || rec.Repo != canonical {
		s.log.Warn().Err(err).Str("repo", canonical).Int("version", rec.V).Str("record_repo", rec.Repo).
			Msg("ignoring an image cache record of another format or repository")
		return nil, nil
	}
	return &rec, nil
}

func (s *Scanner) saveRepo(ctx context.Context, rec *repoRecord) error {
	rec.V = recordVersion
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := s.cache.Set(ctx, repoKey(rec.Repo), b); err != nil {
		return fmt.Errorf("%s: writing the image cache: %w", rec.Repo, err)
	}
	return nil
}

func (s *Scanner) loadImage(ctx context.Context, digest string) (imageRecord, bool) {
	b, err := s.cache.Get(ctx, imageKey(s.platform, digest))
	if err != nil {
		return imageRecord{}, false
	}
	var rec imageRecord
	if json.Unmarshal(b, &rec) != nil {
		return imageRecord{}, false
	}
	return rec, true
}

func (s *Scanner) saveImage(ctx context.Context, digest string, rec imageRecord) {
	b, err := json.Marshal(rec)
	if err == nil {
		err = s.cache.Set(ctx, imageKey(s.platform, digest), b)
	}
	if err != nil {
		s.log.Warn().Err(err).Str("digest", digest).Msg("could not cache an image record")
	}
}
