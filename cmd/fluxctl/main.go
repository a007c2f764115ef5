// Command fluxctl is the command-line client of fluxd's HTTP API.
package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/alecthomas/kong"

	"github.com/fluxd/fluxd/server/client"
)

var version = "dev"

type globals struct {
	URL     string        `name:"url" env:"FLUX_URL" default:"http://127.0.0.1:3030/api/flux" help:"Base URL of fluxd's API, including /api/flux."`
	Token   string        `name:"token" short:"t" env:"FLUX_TOKEN" help:"API token."`
	Timeout time.Duration `name:"timeout" env:"FLUX_TIMEOUT" default:"60s" help:"How long to wait for fluxd."`
	Output  string        `name:"output" short:"o" enum:"table,json" default:"table" help:"Output format: table or json."`
}

func (g *globals) client() (*client.Client, error) {
	return client.New(g.URL, g.Token, nil)
}

type cli struct {
	globals
	Version       versionCmd       `cmd:"" help:"Print the client's and the daemon's versions."`
	Status        statusCmd        `cmd:"" help:"Show the repo, the branch head, the sync tag, pending commits and the last sync."`
	Sync          syncCmd          `cmd:"" help:"Fetch and apply the branch head now, and wait until it is applied."`
	ListWorkloads listWorkloadsCmd `cmd:"" name:"list-workloads" aliases:"list-services,list-controllers" help:"List the workloads in the cluster, with their containers, status and policies."`
	ListImages    listImagesCmd    `cmd:"" name:"list-images" help:"Show each container's running image and the images available for it, newest first."`
	Save          saveCmd          `cmd:"" help:"Export the cluster's workloads as clean YAML."`
	Automate      automateCmd      `cmd:"" help:"Turn on automated releases of workloads (a commit)."`
	Deautomate    deautomateCmd    `cmd:"" help:"Turn off automated releases of workloads (a commit)."`
	Lock          lockCmd          `cmd:"" help:"Lock workloads so nothing releases them (a commit); -m says why."`
	Unlock        unlockCmd        `cmd:"" help:"Unlock workloads (a commit)."`
	Policy        policyCmd        `cmd:"" help:"Change several policies at once: --automate, --lock, --tag <container>=<filter>... (a commit)."`
	Diff          diffCmd          `cmd:"" help:"Show what a sync would change in the cluster now, per object (server-side dry run)."`
	CheckRelease  checkReleaseCmd  `cmd:"" name:"check-release" help:"Show the status of a job by ID."`
	Identity      identityCmd      `cmd:"" help:"Show fluxd's ssh deploy key, to install in the git host."`
	Completion    completionCmd    `cmd:"" help:"Print a shell completion script: source <(fluxctl completion bash), or zsh, or fish."`
}

// parserOptions make fluxctl's command line.
func parserOptions() []kong.Option {
	return []kong.Option{kong.Name("fluxctl"), kong.Description("Talk to fluxd, the git-native GitOps daemon."), kong.UsageOnError()}
}

func main() {
	var c cli
	ctx := kong.Parse(&c, parserOptions()...)
	if err := ctx.Run(&c.globals); err != nil {
		printError(err)
		os.Exit(1)
	}
}

// printError prints one readable line, and fluxd's help if it gave one.
func printError(err error) {
	fmt.Fprintln(os.Stderr, "Error:", err)
	var e *client.Error
	if errors.As(err, &e) && e.Help != "" && !strings.Contains(err.Error(), e.Help) {
		fmt.Fprintln(os.Stderr, "\n"+e.Help)
	}
}
