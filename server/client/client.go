// Package client is a Go client of fluxd's HTTP API, used by fluxctl. It
// speaks the same routes and JSON as Flux v1's fluxctl, plus fluxd's own
// /v12 routes.
package client

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/fluxd/fluxd/server/api"
)

// Client calls one fluxd.
type Client struct {
	base  string // e.g. http://127.0.0.1:3030/api/flux
	token string
	http  *http.Client
}

// New returns a client for the API at base, which includes /api/flux.
func New(base, token string, hc *http.Client) (*Client, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--url %q is not an http(s) URL: give fluxd's API, e.g. http://127.0.0.1:3030/api/flux", base)
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Client{base: strings.TrimSuffix(base, "/"), token: token, http: hc}, nil
}

// Error is an error answered by fluxd: its status, and the envelope's
// short message and help.
type Error struct {
	Status int
	Type   string
	Msg    string
	Help   string
}

func (e *Error) Error() string {
	if e.Msg != "" {
		return e.Msg
	}
	return http.StatusText(e.Status)
}

// ErrUnauthorized is answered when the token is missing or wrong.
var ErrUnauthorized = errors.New("fluxd refused the request: the API token is missing or wrong; pass --token or set FLUX_TOKEN")

func (c *Client) do(ctx context.Context, method, route string, query url.Values, body, out any) error {
	u := c.base + route
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach fluxd at %s (is it running, and is --url right?): %w", c.base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("reading fluxd's answer: %w", err)
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return ErrUnauthorized
	case resp.StatusCode >= 300:
		e := &Error{Status: resp.StatusCode}
		var env struct{ Type, Help, Error, Message string }
		if json.Unmarshal(data, &env) == nil {
			e.Type, e.Help, e.Msg = env.Type, strings.TrimSpace(env.Help), env.Error
			if e.Msg == "" {
				e.Msg = env.Message
			}
		}
		if e.Msg == "" {
			e.Msg = fmt.Sprintf("%s: %s", resp.Status, strings.TrimSpace(string(data)))
		}
		return e
	}
	if out == nil || len(data) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("unexpected answer from fluxd at %s: %w", c.base, err)
	}
	return nil
}

// Version is the daemon's version.
func (c *Client) Version(ctx context.Context) (string, error) {
	var v string
	return v, c.do(ctx, http.MethodGet, "/v11/version", nil, nil, &v)
}

// Status is fluxd's status.
func (c *Client) Status(ctx context.Context) (api.Status, error) {
	var s api.Status
	return s, c.do(ctx, http.MethodGet, "/v12/status", nil, nil, &s)
}

// GitRepoConfig describes the repo and the deploy key; regenerate makes a new key.
func (c *Client) GitRepoConfig(ctx context.Context, regenerate bool) (api.GitConfig, error) {
	var g api.GitConfig
	return g, c.do(ctx, http.MethodPost, "/v9/git-repo-config", nil, regenerate, &g)
}

// UpdateManifests starts a job and returns its ID.
func (c *Client) UpdateManifests(ctx context.Context, spec api.Spec) (string, error) {
	var id string
	return id, c.do(ctx, http.MethodPost, "/v9/update-manifests", nil, spec, &id)
}

// JobStatus reports a job.
func (c *Client) JobStatus(ctx context.Context, id string) (api.JobStatus, error) {
	var s api.JobStatus
	return s, c.do(ctx, http.MethodGet, "/v6/jobs", url.Values{"id": {id}}, nil, &s)
}

// SyncStatus lists the commits up to ref not applied yet.
func (c *Client) SyncStatus(ctx context.Context, ref string) ([]string, error) {
	var s []string
	return s, c.do(ctx, http.MethodGet, "/v6/sync", url.Values{"ref": {ref}}, nil, &s)
}

// ListWorkloads lists the workloads of a namespace ("" for all).
func (c *Client) ListWorkloads(ctx context.Context, namespace string) ([]api.ControllerStatus, error) {
	var s []api.ControllerStatus
	return s, c.do(ctx, http.MethodGet, "/v6/services", url.Values{"namespace": {namespace}}, nil, &s)
}

// Export returns the cluster's workloads as a multi-document YAML stream.
func (c *Client) Export(ctx context.Context) ([]byte, error) {
	var b64 string
	if err := c.do(ctx, http.MethodGet, "/v6/export", nil, nil, &b64); err != nil {
		return nil, err
	}
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("fluxd's export is not base64: %w", err)
	}
	return b, nil
}

// Diff tells what a sync would change now, per object.
func (c *Client) Diff(ctx context.Context) ([]api.ObjectDiff, error) {
	var d []api.ObjectDiff
	return d, c.do(ctx, http.MethodGet, "/v12/diff", nil, nil, &d)
}

// ListImages lists the containers of workloads with their running and
// available images (GET /v10/images, with the query Flux v1's fluxctl
// sends): service is a workload ID with namespace "", or "<all>" for every
// workload in namespace ("" for all namespaces).
func (c *Client) ListImages(ctx context.Context, namespace, service string) ([]api.ImageStatus, error) {
	var s []api.ImageStatus
	q := url.Values{"containerFields": {""}, "namespace": {namespace}, "service": {service}}
	return s, c.do(ctx, http.MethodGet, "/v10/images", q, nil, &s)
}
