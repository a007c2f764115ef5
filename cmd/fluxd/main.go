// Command fluxd is the git-native GitOps daemon: it keeps a Kubernetes
// cluster in step with a git branch, with git as its only state store.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/alecthomas/kong"
)

var version = "dev"

func main() {
	var f flags
	kctx := kong.Parse(&f,
		kong.Name("fluxd"),
		kong.Description("Keep a Kubernetes cluster in step with a git repository. Every flag can also be set as an environment variable FLUXD_<FLAG>."),
		kong.DefaultEnvars("FLUXD"),
		kong.Vars{"version": version},
		kong.UsageOnError(),
	)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, &f); err != nil {
		fmt.Fprintln(os.Stderr, "fluxd:", err)
		kctx.Exit(1)
	}
}
