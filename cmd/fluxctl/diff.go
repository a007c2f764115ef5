package main

import (
	"context"
	"fmt"
	"os"

	"github.com/fluxd/fluxd/server/api"
)

type diffCmd struct {
	All bool `name:"all" help:"Also list the objects a sync would leave unchanged."`
}

// Run shows, per object, what a sync of the branch head would change in
// the cluster now, from a server-side dry run.
func (d diffCmd) Run(g *globals) error {
	c, err := g.client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.Timeout)
	defer cancel()
	ds, err := c.Diff(ctx)
	if err != nil {
		return err
	}
	if g.Output == "json" {
		if ds == nil {
			ds = []api.ObjectDiff{}
		}
		return printJSON(ds)
	}
	changed := 0
	for _, o := range ds {
		if o.Action == "unchanged" && !d.All {
			continue
		}
		if o.Action != "unchanged" {
			changed++
		}
		src := ""
		if o.Source != "" {
			src = " (" + o.Source + ")"
		}
		fmt.Printf("%s %s%s\n", o.Action, o.ID, src)
		if o.Error != "" {
			fmt.Printf("  error: %s\n", o.Error)
		}
		if o.Diff != "" {
			fmt.Println(o.Diff)
		}
	}
	if changed == 0 {
		fmt.Fprintln(os.Stderr, "No changes: the cluster matches git.")
	} else {
		fmt.Fprintf(os.Stderr, "%d of %d objects would change.\n", changed, len(ds))
	}
	return nil
}
