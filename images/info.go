package images

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Label keys an image config may carry that say when the image was built.
const (
	// LabelCreated is the OCI annotation/label for the build time.
	LabelCreated = "org.opencontainers.image.created"
	// LabelBuildDate is the older Label Schema build time.
	LabelBuildDate = "org.label-schema.build-date"
)

// Info is what fluxd knows about one image ref: a tag of a repository and
// the image it points at. Its JSON form is Flux v1's image Info, so the API
// server can send it to fluxctl as it is.
type Info struct {
	// ID is the ref, "<repository>:<tag>", with the repository spelled as
	// the caller named it (e.g. "nginx:1.27", "ghcr.io/shop/cart:2.3.1").
	ID string
	// Digest is the digest of the manifest the tag points at; for a
	// multi-platform image, the digest of the index.
	Digest string
	// ImageID is the digest of the chosen platform's image config: equal
	// for refs that point at the same image.
	ImageID string
	// Labels are the build-time labels found on the image, if any.
	Labels Labels
	// CreatedAt is when the image was built: the config's created time, or
	// else one of the labels. Zero when unknown; such images sort last and
	// automation never picks them.
	CreatedAt time.Time
	// LastFetched is when fluxd last read the tag's manifest.
	LastFetched time.Time
}

// Labels are the build-time labels of an image that fluxd reports.
type Labels struct {
	// BuildDate is the org.label-schema.build-date label.
	BuildDate time.Time
	// Created is the org.opencontainers.image.created label.
	Created time.Time
}

// Tag is the tag part of the ID ("" when the ID has none).
func (i Info) Tag() string {
	_, tag, _ := SplitRef(i.ID)
	return tag
}

// Repo is the repository part of the ID.
func (i Info) Repo() string {
	repo, _, _ := SplitRef(i.ID)
	return repo
}

// SplitRef splits an image ref "[domain/]path[:tag][@digest]" into its
// repository, tag and digest. It does not validate; it only finds the
// parts, so "localhost:5000/app:1.0" gives "localhost:5000/app" and "1.0".
func SplitRef(ref string) (repo, tag, digest string) {
	repo = ref
	if i := strings.Index(repo, "@"); i >= 0 {
		repo, digest = repo[:i], repo[i+1:]
	}
	if i := strings.LastIndex(repo, ":"); i >= 0 && !strings.Contains(repo[i:], "/") {
		repo, tag = repo[:i], repo[i+1:]
	}
	return repo, tag, digest
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	return time.Parse(time.RFC3339Nano, s)
}

// MarshalJSON writes Flux v1's form: every label key optional, times RFC
// 3339 in UTC.
func (l Labels) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		BuildDate string `json:"org.label-schema.build-date,omitempty"`
		Created   string `json:"org.opencontainers.image.created,omitempty"`
	}{formatTime(l.BuildDate), formatTime(l.Created)})
}

// UnmarshalJSON reads Flux v1's form.
func (l *Labels) UnmarshalJSON(b []byte) error {
	var w struct {
		BuildDate string `json:"org.label-schema.build-date"`
		Created   string `json:"org.opencontainers.image.created"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	var err error
	if l.BuildDate, err = parseTime(w.BuildDate); err != nil {
		return fmt.Errorf("label %s: %w", LabelBuildDate, err)
	}
	if l.Created, err = parseTime(w.Created); err != nil {
		return fmt.Errorf("label %s: %w", LabelCreated, err)
	}
	return nil
}

type infoWire struct {
	ID          string
	Digest      string `json:",omitempty"`
	ImageID     string `json:",omitempty"`
	Labels      Labels
	CreatedAt   string `json:",omitempty"`
	LastFetched string `json:",omitempty"`
}

// MarshalJSON writes Flux v1's image Info: ID and Labels always present,
// Digest, ImageID, CreatedAt and LastFetched omitted when empty, times in
// RFC 3339, UTC.
func (i Info) MarshalJSON() ([]byte, error) {
	return json.Marshal(infoWire{
		ID:          i.ID,
		Digest:      i.Digest,
		ImageID:     i.ImageID,
		Labels:      i.Labels,
		CreatedAt:   formatTime(i.CreatedAt),
		LastFetched: formatTime(i.LastFetched),
	})
}

// UnmarshalJSON reads Flux v1's image Info.
func (i *Info) UnmarshalJSON(b []byte) error {
	var w infoWire
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	created, err := parseTime(w.CreatedAt)
	if err != nil {
		return fmt.Errorf("CreatedAt: %w", err)
	}
	fetched, err := parseTime(w.LastFetched)
	if err != nil {
		return fmt.Errorf("LastFetched: %w", err)
	}
	*i = Info{ID: w.ID, Digest: w.Digest, ImageID: w.ImageID, Labels: w.Labels, CreatedAt: created, LastFetched: fetched}
	return nil
}

// Repository is what the cache holds for one image repository.
type Repository struct {
	// Name is the repository as the caller named it.
	Name string
	// Images has one Info per tag, in no particular order: use
	// images/filter to filter and order them.
	Images []Info
	// ScannedAt is when the registry's tag list was last read into this
	// record.
	ScannedAt time.Time
	// Complete is false while a first scan of a large repository is still
	// fetching tags: Images then holds only the tags read so far.
	Complete bool
	// LastError is the error of the latest refresh, when it failed after
	// ScannedAt (the images are then as of ScannedAt); nil otherwise.
	LastError error
}
