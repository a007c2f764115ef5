package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// ImageRef is an image reference, `[domain/]path[:tag]` or
// `[domain/]path[:tag]@<algorithm>:<hex>`, as it appears in a manifest.
// Decoding one from JSON rejects "" and malformed references, as Flux v1
// does for the Current and Target of a ContainerUpdate.
type ImageRef string

var (
	// ErrInvalidImageRef is wrapped by every image reference parse error.
	ErrInvalidImageRef = errors.New("invalid image reference")

	domainRE    = regexp.MustCompile(`^[a-zA-Z0-9](?:[a-zA-Z0-9.-]*[a-zA-Z0-9])?(?::[0-9]+)?$`)
	pathPartRE  = regexp.MustCompile(`^[A-Za-z0-9]+(?:(?:[._]|__|-+)[A-Za-z0-9]+)*$`)
	tagRE       = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	imgDigestRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$`)
)

// ParseImageRef checks s and returns it as an ImageRef, unchanged.
func ParseImageRef(s string) (ImageRef, error) {
	if _, _, _, _, err := splitRef(s); err != nil {
		return "", err
	}
	return ImageRef(s), nil
}

// splitRef splits a reference into domain, path, tag and digest.
func splitRef(s string) (domain, path, tag, digest string, err error) {
	bad := func(why string) error { return fmt.Errorf("%w %q: %s", ErrInvalidImageRef, s, why) }
	if s == "" {
		return "", "", "", "", bad("it is empty")
	}
	rest := s
	if name, d, ok := strings.Cut(rest, "@"); ok {
		if !imgDigestRE.MatchString(d) {
			return "", "", "", "", bad("the digest after '@' is malformed, want e.g. sha256:<64 hex digits>")
		}
		rest, digest = name, d
	}
	parts := strings.Split(rest, "/")
	// As in Docker: the first component is a registry domain when there
	// are more, and it has a '.' or a port, or is localhost.
	if len(parts) > 1 && (strings.ContainsAny(parts[0], ".:") || parts[0] == "localhost") {
		if !domainRE.MatchString(parts[0]) {
			return "", "", "", "", bad("the registry domain is malformed")
		}
		domain, parts = parts[0], parts[1:]
	}
	last := parts[len(parts)-1]
	if name, t, ok := strings.Cut(last, ":"); ok {
		if !tagRE.MatchString(t) {
			return "", "", "", "", bad("the tag is empty or malformed")
		}
		parts[len(parts)-1], tag = name, t
	}
	for _, p := range parts {
		if !pathPartRE.MatchString(p) {
			return "", "", "", "", bad("want [domain/]path[:tag], e.g. ghcr.io/org/app:1.2.3")
		}
	}
	return domain, strings.Join(parts, "/"), tag, digest, nil
}

// Tag returns the tag of r, or "".
func (r ImageRef) Tag() string {
	_, _, tag, _, _ := splitRef(string(r))
	return tag
}

// Digest returns the digest of r (e.g. "sha256:..."), or "".
func (r ImageRef) Digest() string {
	_, _, _, d, _ := splitRef(string(r))
	return d
}

// Name returns the image name of r, without tag or digest.
func (r ImageRef) Name() ImageName {
	domain, path, _, _, _ := splitRef(string(r))
	return ImageName{Domain: domain, Image: path}
}

func (r ImageRef) String() string { return string(r) }

// UnmarshalJSON accepts only a well-formed reference.
func (r *ImageRef) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	p, err := ParseImageRef(s)
	if err != nil {
		return err
	}
	*r = p
	return nil
}

// ImageName is an image without tag: a registry domain ("" for Docker
// Hub) and a path. On the wire it is an object, {"Domain", "Image"}.
type ImageName struct {
	Domain string
	Image  string
}

func (n ImageName) String() string {
	if n.Domain == "" {
		return n.Image
	}
	return n.Domain + "/" + n.Image
}

// ImageLabels are the image labels fluxd reads to date an image.
type ImageLabels struct {
	// BuildDate is the label org.label-schema.build-date.
	BuildDate time.Time
	// Created is the label org.opencontainers.image.created.
	Created time.Time
}

type labelsJSON struct {
	BuildDate string `json:"org.label-schema.build-date,omitempty"`
	Created   string `json:"org.opencontainers.image.created,omitempty"`
}

// MarshalJSON writes each label only when set: {} when none is.
func (l ImageLabels) MarshalJSON() ([]byte, error) {
	return l.appendJSON(make([]byte, 0, 96)), nil
}

// appendJSON appends what MarshalJSON writes, without the reflection of
// encoding/json: a list-images answer holds a hundred thousand of these.
func (l ImageLabels) appendJSON(b []byte) []byte {
	b = append(b, '{')
	sep := false
	for _, f := range []struct {
		key string
		t   time.Time
	}{{"org.label-schema.build-date", l.BuildDate}, {"org.opencontainers.image.created", l.Created}} {
		if f.t.IsZero() {
			continue
		}
		if sep {
			b = append(b, ',')
		}
		b = appendJSONString(b, f.key)
		b = append(b, ':')
		b = appendJSONString(b, formatTime(f.t))
		sep = true
	}
	return append(b, '}')
}

// UnmarshalJSON reads RFC 3339 times.
func (l *ImageLabels) UnmarshalJSON(b []byte) error {
	var w labelsJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	var err error
	if l.BuildDate, err = parseTime(w.BuildDate); err != nil {
		return fmt.Errorf("label org.label-schema.build-date: %w", err)
	}
	if l.Created, err = parseTime(w.Created); err != nil {
		return fmt.Errorf("label org.opencontainers.image.created: %w", err)
	}
	return nil
}

// Info is what fluxd knows of one image: its reference and registry
// metadata. ID and Labels are always present on the wire (the zero Info is
// {"ID":"","Labels":{}}); the other fields only when set.
type Info struct {
	// ID is the image reference; "" when unknown.
	ID ImageRef
	// Digest is the manifest digest fetched for ID.
	Digest string
	// ImageID identifies the image itself (the config digest).
	ImageID string
	Labels  ImageLabels
	// CreatedAt is when the image was built.
	CreatedAt time.Time
	// LastFetched is when fluxd last fetched the image's metadata.
	LastFetched time.Time
}

type infoJSON struct {
	ID          string      `json:"ID"`
	Digest      string      `json:",omitempty"`
	ImageID     string      `json:",omitempty"`
	Labels      ImageLabels `json:"Labels"`
	CreatedAt   string      `json:",omitempty"`
	LastFetched string      `json:",omitempty"`
}

// MarshalJSON writes times as RFC 3339 in UTC and omits zero ones, in the
// order and shape of infoJSON, without the reflection of encoding/json.
func (i Info) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 192)
	b = append(b, `{"ID":`...)
	b = appendJSONString(b, string(i.ID))
	for _, f := range []struct{ key, value string }{{"Digest", i.Digest}, {"ImageID", i.ImageID}} {
		if f.value != "" {
			b = append(b, `,"`+f.key+`":`...)
			b = appendJSONString(b, f.value)
		}
	}
	b = append(b, `,"Labels":`...)
	b = i.Labels.appendJSON(b)
	for _, f := range []struct {
		key string
		t   time.Time
	}{{"CreatedAt", i.CreatedAt}, {"LastFetched", i.LastFetched}} {
		if !f.t.IsZero() {
			b = append(b, `,"`+f.key+`":`...)
			b = appendJSONString(b, formatTime(f.t))
		}
	}
	return append(b, '}'), nil
}

// appendJSONString appends s as a JSON string, as encoding/json writes it.
// Image references, digests and times are plain ASCII and are copied as
// they are; anything else goes through encoding/json.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			enc, _ := json.Marshal(s) // a string always encodes
			return append(b, enc...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// UnmarshalJSON tolerates an empty or unparsable ID, as fluxctl does.
func (i *Info) UnmarshalJSON(b []byte) error {
	var w infoJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	out := Info{ID: ImageRef(w.ID), Digest: w.Digest, ImageID: w.ImageID, Labels: w.Labels}
	var err error
	if out.CreatedAt, err = parseTime(w.CreatedAt); err != nil {
		return fmt.Errorf("image CreatedAt: %w", err)
	}
	if out.LastFetched, err = parseTime(w.LastFetched); err != nil {
		return fmt.Errorf("image LastFetched: %w", err)
	}
	*i = out
	return nil
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
	return time.Parse(time.RFC3339, s)
}
