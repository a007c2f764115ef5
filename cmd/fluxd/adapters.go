package main

import (
	"context"

	"github.com/fluxd/fluxd/kube"
	"github.com/fluxd/fluxd/kube/resource"
	"github.com/fluxd/fluxd/sync"
)

// syncCluster adapts the kube applier to the sync loop's Cluster.
type syncCluster struct {
	cluster *kube.Cluster
	opts    kube.SyncOptions
}

var _ sync.Cluster = (*syncCluster)(nil)

func (c *syncCluster) Apply(ctx context.Context, files []resource.File, force bool, blockPrune string) (resource.ChangeSet, error) {
	o := c.opts
	o.Force = force
	o.PruneBlocked = blockPrune
	return c.cluster.Sync(ctx, files, o)
}
