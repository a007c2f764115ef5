package kube_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"

	"github.com/fluxd/fluxd/kube"
	"github.com/fluxd/fluxd/kube/resource"
)

// BenchmarkWorkloads1000 lists 1,000 Deployments (in 10 namespaces of
// 100) with Cluster.Workloads and from a WorkloadCache: all namespaces,
// and one namespace; the cache also from many goroutines at once, as an
// HTTP server would.
func BenchmarkWorkloads1000(b *testing.B) {
	cfg := restConfig(b)
	c, err := kube.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	prefix := fmt.Sprintf("bw%d", time.Now().UnixNano()%1000000)
	var files []resource.File
	var namespaces []string
	for n := 0; n < 10; n++ {
		ns := fmt.Sprintf("%s-ns%d", prefix, n)
		namespaces = append(namespaces, ns)
		files = append(files, file(ns+"/ns.yaml", namespaceYAML(ns)))
		for i := 0; i < 100; i++ {
			files = append(files, file(fmt.Sprintf("%s/d%03d.yaml", ns, i), deploymentYAML(ns, fmt.Sprintf("app-%03d", i), 1)))
		}
	}
	defer func() {
		for _, ns := range namespaces {
			_ = dyn.Resource(nsGVR).Delete(context.Background(), ns, metav1.DeleteOptions{})
		}
		deadline := time.Now().Add(3 * time.Minute)
		for _, ns := range namespaces {
			for time.Now().Before(deadline) {
				if _, err := dyn.Resource(nsGVR).Get(context.Background(), ns, metav1.GetOptions{}); apierrors.IsNotFound(err) {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
	}()
	cs, err := c.Sync(ctx, files, kube.SyncOptions{GCMark: kube.GCMark("bench", prefix, "main", nil)})
	if err != nil || !cs.OK() {
		b.Fatalf("sync: %v %v", err, cs.Failures())
	}
	// Let the controllers make their ReplicaSets and Pods first.
	for {
		ws, err := c.Workloads(ctx, "")
		if err != nil {
			b.Fatal(err)
		}
		updated := 0
		for _, w := range ws {
			if w.Rollout.Updated == 1 {
				updated++
			}
		}
		if updated >= 1000 {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	time.Sleep(time.Second)

	wc := c.NewWorkloadCache()
	go func() { _ = wc.Run(ctx) }()
	t0 := time.Now()
	if err := wc.WaitReady(ctx); err != nil {
		b.Fatal(err)
	}
	b.Logf("cache ready in %s", time.Since(t0))

	check := func(ws []kube.Workload, err error, min int) {
		if err != nil {
			b.Fatal(err)
		}
		if len(ws) < min {
			b.Fatalf("%d workloads, want at least %d", len(ws), min)
		}
	}
	b.ResetTimer()
	b.Run("direct/all", func(b *testing.B) {
		for b.Loop() {
			ws, err := c.Workloads(ctx, "")
			check(ws, err, 1000)
		}
	})
	b.Run("direct/namespace", func(b *testing.B) {
		for b.Loop() {
			ws, err := c.Workloads(ctx, namespaces[3])
			check(ws, err, 100)
		}
	})
	b.Run("cached/all", func(b *testing.B) {
		for b.Loop() {
			ws, err := wc.Workloads(ctx, "")
			check(ws, err, 1000)
		}
	})
	b.Run("cached/namespace", func(b *testing.B) {
		for b.Loop() {
			ws, err := wc.Workloads(ctx, namespaces[3])
			check(ws, err, 100)
		}
	})
	b.Run("cached/all/parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				ws, err := wc.Workloads(ctx, "")
				check(ws, err, 1000)
			}
		})
	})
}
