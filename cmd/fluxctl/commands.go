package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fluxd/fluxd/server/api"
	"github.com/fluxd/fluxd/server/client"
)

type versionCmd struct{}

// VersionJSON is what fluxctl version -o json prints.
type VersionJSON struct {
	Client string `json:"client"`
	Daemon string `json:"daemon"`
}

func (versionCmd) Run(g *globals) error {
	c, err := g.client()
	if err != nil {
		return err
	}
	if g.Output != "json" {
		fmt.Printf("client: %s\n", version)
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.Timeout)
	defer cancel()
	v, err := c.Version(ctx)
	if err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	if g.Output == "json" {
		return printJSON(VersionJSON{Client: version, Daemon: v})
	}
	fmt.Printf("daemon: %s\n", v)
	return nil
}

type statusCmd struct{}

func (statusCmd) Run(g *globals) error {
	c, err := g.client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.Timeout)
	defer cancel()
	s, err := c.Status(ctx)
	if err != nil {
		return err
	}
	if g.Output == "json" {
		if s.Git.Paths == nil {
			s.Git.Paths = []string{} // the whole repository
		}
		return printJSON(s)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(w, "%s\t%s\n", k, v) }
	row("Repository", s.Git.URL)
	row("Branch", s.Git.Branch)
	row("Paths", orDash(strings.Join(s.Git.Paths, ", ")))
	row("Head", orDash(s.Git.Head))
	if s.Git.Error != "" {
		row("Git error", s.Git.Error)
	}
	row("Cluster", s.Cluster)
	row("Sync tag", s.Sync.Tag+" at "+orDash(s.Sync.Applied))
	row("Pending commits", fmt.Sprint(len(s.Sync.Pending)))
	for _, p := range s.Sync.Pending {
		row("", p)
	}
	if s.Sync.LastSync != nil {
		row("Last sync", s.Sync.LastSync.Local().Format(time.RFC3339))
	} else {
		row("Last sync", "never")
	}
	if r := s.Sync.LastRecord; r != nil {
		row("Last synced commit", r.Commit)
		row("Last sync result", fmt.Sprintf("%d applied, %d unchanged, %d pruned, %d skipped, %d failed", r.Counts.Applied, r.Counts.Unchanged, r.Counts.Pruned, r.Counts.Skipped, r.Counts.Failed))
		for _, e := range r.Errors {
			row("  error", fmt.Sprintf("%s %s: %s", e.Path, e.Object, e.Error))
		}
		if r.PruneBlocked != "" {
			row("  pruning blocked", r.PruneBlocked)
		}
	}
	if s.Sync.LastError != "" {
		row("Sync error", s.Sync.LastError)
	}
	if s.Sync.PendingPush {
		row("Push pending", "the last sync record is not pushed yet")
	}
	if r := s.Registry; r != nil {
		row("Image cache", r.Cache)
		row("Image repos", fmt.Sprintf("%d scanned of %d watched", r.ReposScanned, r.ReposKnown))
		for _, e := range r.RepoErrors {
			row("  scan error", e.Repo+": "+e.Error)
		}
		for _, h := range r.Hosts {
			switch {
			case h.RateLimited:
				row("  rate-limited", fmt.Sprintf("%s at %.2f/s of %.2f/s %s", h.Host, h.Rate, h.ConfiguredRate, h.LastError))
			case h.LastError != "":
				row("  registry error", h.Host+": "+h.LastError)
			}
		}
	}
	row("Read-only", fmt.Sprint(s.Git.ReadOnly))
	row("Version", s.Version)
	return w.Flush()
}

type syncCmd struct{}

// SyncJSON is what fluxctl sync -o json prints once the commit is applied.
type SyncJSON struct {
	URL      string `json:"url"`
	Branch   string `json:"branch"`
	Revision string `json:"revision"`
}

// Run notifies fluxd, learns the head it fetched, and waits until that
// commit is applied, or its sync reports errors.
func (syncCmd) Run(g *globals) error {
	c, err := g.client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.Timeout)
	defer cancel()
	cfg, err := c.GitRepoConfig(ctx, false)
	if err != nil {
		return err
	}
	if cfg.Status != api.RepoReady {
		return fmt.Errorf("fluxd's repository %s is %s: %s", cfg.Remote.URL, cfg.Status, orDash(cfg.Error))
	}
	fmt.Fprintf(os.Stderr, "Synchronizing with %s\n", cfg.Remote.URL)
	id, err := c.UpdateManifests(ctx, api.Spec{Type: api.UpdateSync, Spec: api.ManualSync{}})
	if err != nil {
		return err
	}
	job, err := waitJob(ctx, c, id)
	if err != nil {
		return err
	}
	rev := job.Result.Revision
	fmt.Fprintf(os.Stderr, "Revision of %s to apply is %s\n", cfg.Remote.Branch, short(rev))
	if err := waitApplied(ctx, c, rev); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "Done.")
	if g.Output == "json" {
		return printJSON(SyncJSON{URL: cfg.Remote.URL, Branch: cfg.Remote.Branch, Revision: rev})
	}
	return nil
}

// waitJob polls a job until it finishes.
func waitJob(ctx context.Context, c *client.Client, id string) (api.JobStatus, error) {
	for delay := 100 * time.Millisecond; ; delay = min(2*delay, 5*time.Second) {
		st, err := c.JobStatus(ctx, id)
		if err != nil {
			return st, err
		}
		switch {
		case st.StatusString == api.JobFailed || st.Err != "":
			return st, fmt.Errorf("job %s failed: %s", id, st.Err)
		case st.StatusString == api.JobSucceeded:
			return st, nil
		}
		if err := sleep(ctx, delay); err != nil {
			return st, fmt.Errorf("job %s still %s: %w", id, st.StatusString, err)
		}
	}
}

// waitApplied polls until rev is applied, showing progress; a sync of rev
// that failed ends the wait with its errors.
func waitApplied(ctx context.Context, c *client.Client, rev string) error {
	start := time.Now()
	for delay := 200 * time.Millisecond; ; delay = min(2*delay, 2*time.Second) {
		pending, err := c.SyncStatus(ctx, rev)
		if err != nil {
			return err
		}
		if len(pending) == 0 {
			fmt.Fprintf(os.Stderr, "\rApplied %s in %.1fs.          \n", short(rev), time.Since(start).Seconds())
			return nil
		}
		if s, err := c.Status(ctx); err == nil && s.Sync.LastRecord != nil && s.Sync.LastRecord.Commit == pending[0] && !s.Sync.LastRecord.OK() {
			var msgs []string
			for _, e := range s.Sync.LastRecord.Errors {
				msgs = append(msgs, fmt.Sprintf("%s %s: %s", e.Path, e.Object, e.Error))
			}
			return fmt.Errorf("the sync of %s failed, so it is not fully applied:\n  %s\nFix the manifests and push again", short(pending[0]), strings.Join(msgs, "\n  "))
		}
		fmt.Fprintf(os.Stderr, "\rWaiting for %s to be applied: %d commit(s) pending, %.0fs ...", short(rev), len(pending), time.Since(start).Seconds())
		if err := sleep(ctx, delay); err != nil {
			fmt.Fprintln(os.Stderr)
			return fmt.Errorf("%s is not applied yet: %w (run 'fluxctl status' to see why)", short(rev), err)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return errors.New("timed out (see --timeout)")
		}
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func short(rev string) string {
	if len(rev) > 7 {
		return rev[:7]
	}
	return rev
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
