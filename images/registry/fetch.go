package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/fluxd/fluxd/images"
)

// Errors for tags that exist but hold no image fluxd can date. They are
// facts about a digest, not failures of the registry: the scanner records
// such a tag without a creation time.
var (
	// ErrNoPlatform: a multi-platform index without an image for the
	// configured platform.
	ErrNoPlatform = errors.New("no image for the platform")
	// ErrUnsupported: a manifest of a kind fluxd does not read (Docker
	// schema 1, an unknown media type).
	ErrUnsupported = errors.New("unsupported manifest")
)

// Tags lists the tags of a repository: one request per page of 1000 tags.
// It looks the repository's credentials up again (the pull secrets may
// have changed); the other reads reuse them.
func (c *Client) Tags(ctx context.Context, r Repo) ([]string, error) {
	p, err := c.puller(ctx, r, true)
	if err != nil {
		return nil, err
	}
	tags, err := p.List(ctx, r.ref)
	if err != nil {
		return nil, c.classify(r, "listing tags", err)
	}
	return tags, nil
}

// Manifest is what a tag points at, as read from the registry.
type Manifest struct {
	Repo   Repo
	Tag    string
	Digest string
	// MediaType is the manifest's media type (an image manifest or an
	// index).
	MediaType string
	// Fetched is when the manifest was read.
	Fetched time.Time

	desc *remote.Descriptor
}

// Manifest reads the manifest a tag points at: one request.
func (c *Client) Manifest(ctx context.Context, r Repo, tag string) (*Manifest, error) {
	p, err := c.puller(ctx, r, false)
	if err != nil {
		return nil, err
	}
	ref := r.ref.Tag(tag)
	desc, err := p.Get(ctx, ref)
	if err != nil {
		return nil, c.classify(r, "reading the manifest of "+tag, err)
	}
	return &Manifest{
		Repo:      r,
		Tag:       tag,
		Digest:    desc.Digest.String(),
		MediaType: string(desc.MediaType),
		Fetched:   time.Now(),
		desc:      desc,
	}, nil
}

// Head reads the digest a tag points at, with a HEAD request (which Docker
// Hub does not count against its pull limit).
func (c *Client) Head(ctx context.Context, r Repo, tag string) (string, error) {
	p, err := c.puller(ctx, r, false)
	if err != nil {
		return "", err
	}
	desc, err := p.Head(ctx, r.ref.Tag(tag))
	if err != nil {
		return "", c.classify(r, "checking the digest of "+tag, err)
	}
	return desc.Digest.String(), nil
}

// Image is what fluxd keeps of an image: its config digest, creation time
// and build-time labels.
type Image struct {
	// ImageID is the config digest of the image for the platform.
	ImageID string
	// CreatedAt is the config's created time, else the
	// org.opencontainers.image.created label, else the
	// org.label-schema.build-date label, else the manifest's
	// org.opencontainers.image.created annotation; zero if none is set.
	// Times at or before the Unix epoch (what reproducible builds write)
	// count as unset.
	CreatedAt time.Time
	// Labels are the build-time labels that parsed as RFC 3339.
	Labels images.Labels
}

// Image reads the image a manifest stands for: for an index, the
// platform's image manifest (one request), then its config (one request).
// A tag holding no image fluxd can date gives ErrNoPlatform or
// ErrUnsupported.
func (c *Client) Image(ctx context.Context, m *Manifest) (Image, error) {
	var (
		img         v1.Image
		annotations map[string]string
		err         error
	)
	mt := m.desc.MediaType
	op := "reading the image of " + m.Tag
	switch {
	case mt.IsIndex():
		idx, err := m.desc.ImageIndex()
		if err != nil {
			return Image{}, c.classify(m.Repo, op, err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return Image{}, c.classify(m.Repo, op, err)
		}
		annotations = im.Annotations
		var child *v1.Descriptor
		for i := range im.Manifests {
			d := &im.Manifests[i]
			if d.MediaType.IsImage() && d.Platform != nil && d.Platform.Satisfies(c.platform) {
				child = d
				break
			}
		}
		if child == nil {
			return Image{}, fmt.Errorf("%s:%s: %w %s", m.Repo.Given, m.Tag, ErrNoPlatform, c.platform.String())
		}
		if img, err = idx.Image(child.Digest); err != nil {
			return Image{}, c.classify(m.Repo, op, err)
		}
	case mt.IsImage():
		if img, err = m.desc.Image(); err != nil {
			return Image{}, c.classify(m.Repo, op, err)
		}
	default:
		return Image{}, fmt.Errorf("%s:%s: %w of type %q", m.Repo.Given, m.Tag, ErrUnsupported, mt)
	}
	if mf, err := img.Manifest(); err == nil && len(mf.Annotations) > 0 {
		annotations = mf.Annotations
	}
	id, err := img.ConfigName()
	if err != nil {
		return Image{}, c.classify(m.Repo, op, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return Image{}, c.classify(m.Repo, op, err)
	}
	out := Image{ImageID: id.String()}
	labels := cf.Config.Labels
	out.Labels.Created = labelTime(labels[images.LabelCreated])
	out.Labels.BuildDate = labelTime(labels[images.LabelBuildDate])
	for _, t := range []time.Time{cf.Created.Time, out.Labels.Created, out.Labels.BuildDate, labelTime(annotations[images.LabelCreated])} {
		if datable(t) {
			out.CreatedAt = t.UTC()
			break
		}
	}
	return out, nil
}

// datable is false for the zero time and for times at or before the Unix
// epoch, which reproducible builds write when they do not know.
func datable(t time.Time) bool {
	return !t.IsZero() && t.Unix() > 0
}

func labelTime(v string) time.Time {
	if v == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil || !datable(t) {
		return time.Time{}
	}
	return t.UTC()
}

// classify turns an error of go-containerregistry into an
// *images.RegistryError, by its type: never by its text.
func (c *Client) classify(r Repo, op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	re := &images.RegistryError{Host: r.Host, Repo: r.Name, Err: fmt.Errorf("%s: %w", op, err)}
	var (
		paused *pausedError
		terr   *transport.Error
		netErr net.Error
		synErr *json.SyntaxError
		typErr *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &paused):
		re.Kind = images.ErrRateLimited
		re.RetryAfter = time.Until(paused.until)
	case errors.As(err, &terr):
		re.StatusCode = terr.StatusCode
		re.Kind = kindOf(terr)
		if re.Kind == images.ErrRateLimited {
			if until := c.PausedUntil(r.Host); !until.IsZero() {
				re.RetryAfter = time.Until(until)
			}
		}
		if re.Kind == images.ErrUnauthorized {
			// Credentials may have been rotated: authenticate afresh
			// next time.
			c.Forget(r)
		}
	case errors.As(err, &synErr), errors.As(err, &typErr), errors.Is(err, io.ErrUnexpectedEOF):
		re.Kind = images.ErrBadResponse
	case errors.As(err, &netErr), errors.Is(err, io.EOF):
		re.Kind = images.ErrUnavailable
		c.Forget(r)
	default:
		re.Kind = images.ErrBadResponse
	}
	return re
}

// kindOf classifies a registry error response by its status and error
// codes.
func kindOf(e *transport.Error) error {
	for _, d := range e.Errors {
		switch d.Code {
		case transport.TooManyRequestsErrorCode:
			return images.ErrRateLimited
		}
	}
	switch {
	case e.StatusCode == 429:
		return images.ErrRateLimited
	case e.StatusCode == 401 || e.StatusCode == 403:
		return images.ErrUnauthorized
	case e.StatusCode == 404:
		return images.ErrNotFound
	case e.StatusCode >= 500:
		return images.ErrUnavailable
	}
	for _, d := range e.Errors {
		switch d.Code {
		case transport.UnauthorizedErrorCode, transport.DeniedErrorCode:
			return images.ErrUnauthorized
		case transport.NameUnknownErrorCode, transport.ManifestUnknownErrorCode:
			return images.ErrNotFound
		case transport.UnavailableErrorCode:
			return images.ErrUnavailable
		}
	}
	return images.ErrBadResponse
}

// IsPermanent reports whether an error of Image is a fact about the
// manifest's digest (no image for the platform, an unsupported manifest)
// that no retry will change.
func IsPermanent(err error) bool {
	return errors.Is(err, ErrNoPlatform) || errors.Is(err, ErrUnsupported)
}
