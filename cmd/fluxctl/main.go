// Command fluxctl is the command-line client of fluxd's HTTP API.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/alecthomas/kong"
)

var version = "dev"

type globals struct {
	URL     string        `name:"url" env:"FLUX_URL" default:"http://127.0.0.1:3030/api/flux" help:"Base URL of fluxd's API, including /api/flux."`
	Token   string        `name:"token" short:"t" env:"FLUX_TOKEN" help:"API token."`
	Timeout time.Duration `name:"timeout" env:"FLUX_TIMEOUT" default:"60s" help:"How long to wait for fluxd."`
	Output  string        `name:"output" short:"o" enum:"table,json" default:"table" help:"Output format: table or json."`
}

type cli struct {
	globals
	Version versionCmd `cmd:"" help:"Print the client's and the daemon's versions."`
}

type versionCmd struct{}

func (versionCmd) Run(g *globals) error {
	fmt.Printf("client: %s\n", version)
	v, err := daemonVersion(g)
	if err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	fmt.Printf("daemon: %s\n", v)
	return nil
}

func daemonVersion(g *globals) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), g.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(g.URL, "/")+"/v11/version", nil)
	if err != nil {
		return "", fmt.Errorf("bad --url %q: %w", g.URL, err)
	}
	req.Header.Set("Accept", "application/json")
	if g.Token != "" {
		req.Header.Set("Authorization", "Bearer "+g.Token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("cannot reach fluxd at %s (is it running? is --url right?): %w", g.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	var v string
	if err := json.Unmarshal(body, &v); err != nil {
		return "", fmt.Errorf("unexpected answer from %s: %q", g.URL, body)
	}
	return v, nil
}

func main() {
	var c cli
	ctx := kong.Parse(&c, kong.Name("fluxctl"), kong.Description("Talk to fluxd, the git-native GitOps daemon."), kong.UsageOnError())
	if err := ctx.Run(&c.globals); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}
