package images_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/fluxd/fluxd/images"
)

func TestInfoJSONIsFluxV1(t *testing.T) {
	for _, tc := range []struct {
		in   images.Info
		want string
	}{
		{images.Info{}, `{"ID":"","Labels":{}}`},
		{
			images.Info{
				ID:          "ghcr.io/shop/cart:2.3.0",
				Digest:      "sha256:9f1c",
				CreatedAt:   time.Date(2024, 3, 1, 9, 0, 0, 0, time.FixedZone("CET", 3600)),
				LastFetched: time.Date(2024, 3, 2, 8, 0, 0, 500, time.UTC),
				Labels:      images.Labels{Created: time.Date(2024, 3, 1, 8, 0, 0, 0, time.UTC)},
			},
			`{"ID":"ghcr.io/shop/cart:2.3.0","Digest":"sha256:9f1c","Labels":{"org.opencontainers.image.created":"2024-03-01T08:00:00Z"},"CreatedAt":"2024-03-01T08:00:00Z","LastFetched":"2024-03-02T08:00:00.0000005Z"}`,
		},
	} {
		b, err := json.Marshal(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != tc.want {
			t.Errorf("got  %s\nwant %s", b, tc.want)
		}
		var back images.Info
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if back.ID != tc.in.ID || !back.CreatedAt.Equal(tc.in.CreatedAt) || !back.LastFetched.Equal(tc.in.LastFetched) || !back.Labels.Created.Equal(tc.in.Labels.Created) {
			t.Errorf("round trip: %+v", back)
		}
	}
	var bad images.Info
	if err := json.Unmarshal([]byte(`{"ID":"x","CreatedAt":"yesterday"}`), &bad); err == nil {
		t.Error("a bad time decoded")
	}
}

func TestErrorsClassify(t *testing.T) {
	re := &images.RegistryError{Kind: images.ErrRateLimited, Host: "index.docker.io", Repo: "index.docker.io/library/nginx", RetryAfter: 90 * time.Second, Err: errors.New("429")}
	err := fmt.Errorf("refresh: %w", re)
	if !errors.Is(err, images.ErrRateLimited) || errors.Is(err, images.ErrUnauthorized) {
		t.Errorf("kind: %v", err)
	}
	var got *images.RegistryError
	if !errors.As(err, &got) || got.RetryAfter != 90*time.Second {
		t.Errorf("as: %v", err)
	}
	ns := &images.NotScannedError{Repo: "nginx", Cause: &images.RegistryError{Kind: images.ErrUnauthorized, Host: "index.docker.io"}}
	if !errors.Is(ns, images.ErrNotScanned) || !errors.Is(ns, images.ErrUnauthorized) || errors.Is(ns, images.ErrNotFound) {
		t.Errorf("not scanned: %v", ns)
	}
	t.Log(re)
	t.Log(ns)
}
