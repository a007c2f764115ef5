package kube_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"

	"github.com/fluxd/fluxd/kube"
	"github.com/fluxd/fluxd/kube/resource"
)

// benchManifests returns the benchmark's 1,000 objects, one file each: 20
// Namespaces, 400 Deployments, 300 Services and 280 ConfigMaps.
func benchManifests(prefix string) (files []resource.File, namespaces []string) {
	for n := 0; n < 20; n++ {
		ns := fmt.Sprintf("%s-ns%02d", prefix, n)
		namespaces = append(namespaces, ns)
		files = append(files, file(fmt.Sprintf("00-namespaces/%s.yaml", ns), namespaceYAML(ns)))
		for i := 0; i < 20; i++ {
			files = append(files, file(fmt.Sprintf("%s/deploy-%02d.yaml", ns, i), deploymentYAML(ns, fmt.Sprintf("app-%02d", i), 1)))
		}
		for i := 0; i < 15; i++ {
			files = append(files, file(fmt.Sprintf("%s/svc-%02d.yaml", ns, i), serviceYAML(ns, fmt.Sprintf("app-%02d", i))))
		}
		for i := 0; i < 14; i++ {
			files = append(files, file(fmt.Sprintf("%s/cm-%02d.yaml", ns, i), configMapYAML(ns, fmt.Sprintf("config-%02d", i), strings.Repeat("x", 200))))
		}
	}
	return files, namespaces
}

// BenchmarkSync1000 syncs 1,000 objects cold, then, once the controllers
// have settled, again with nothing changed (with and without pruning), then
// forced; and, for comparison, runs `kubectl apply --server-side` cold and
// again on a copy of the objects in other namespaces. Run it with
// -benchtime=1x (or a few): each iteration creates 2,000 new objects.
func BenchmarkSync1000(b *testing.B) {
	cfg := restConfig(b)
	c, err := kube.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var cold, noop, noopPrune, force, kcold, knoop time.Duration
	timed := func(d *time.Duration, f func()) {
		t0 := time.Now()
		f()
		*d += time.Since(t0)
	}
	// cleanup deletes the namespaces and waits until the namespace
	// controller has emptied them, so that the next measurement does not
	// compete with it.
	cleanup := func(namespaces []string) {
		for _, ns := range namespaces {
			_ = dyn.Resource(nsGVR).Delete(ctx, ns, metav1.DeleteOptions{})
		}
		deadline := time.Now().Add(3 * time.Minute)
		for _, ns := range namespaces {
			for {
				_, err := dyn.Resource(nsGVR).Get(ctx, ns, metav1.GetOptions{})
				if apierrors.IsNotFound(err) {
					break
				}
				if time.Now().After(deadline) {
					b.Fatalf("namespace %s not gone after 3 minutes (%v)", ns, err)
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
	}
	// settle waits until the controllers have done their work for the
	// Deployments (a ReplicaSet and a Pod each), so that the no-op
	// measurements do not compete with them.
	settle := func(namespaces []string) {
		deadline := time.Now().Add(3 * time.Minute)
		for _, ns := range namespaces {
			for {
				list, err := dyn.Resource(deployGVR).Namespace(ns).List(ctx, metav1.ListOptions{})
				if err != nil {
					b.Fatal(err)
				}
				ready := 0
				for _, d := range list.Items {
					if n, _, _ := unstructured.NestedInt64(d.Object, "status", "replicas"); n > 0 {
						ready++
					}
				}
				if ready == len(list.Items) {
					break
				}
				if time.Now().After(deadline) {
					b.Fatalf("namespace %s: %d of %d Deployments have replicas after 3 minutes", ns, ready, len(list.Items))
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
		time.Sleep(time.Second)
	}
	check := func(what string, cs resource.ChangeSet, err error, a resource.Action) {
		if err != nil {
			b.Fatalf("%s: %v", what, err)
		}
		if n := cs.Count(a); n != 1000 || !cs.OK() {
			b.Fatalf("%s: %d %s of %d, failures %v", what, n, a, len(cs.Changes), cs.Failures())
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		prefix := fmt.Sprintf("b%d-%d", time.Now().UnixNano()%1000000, i)
		files, namespaces := benchManifests(prefix)
		opts := kube.SyncOptions{GCMark: kube.GCMark("bench", prefix, "main", nil)}
		prune := opts
		prune.Prune = true
		forced := opts
		forced.Force = true
		var cs resource.ChangeSet
		timed(&cold, func() { cs, err = c.Sync(ctx, files, opts) })
		check("cold", cs, err, resource.Created)
		b.StopTimer()
		settle(namespaces)
		b.StartTimer()
		timed(&noop, func() { cs, err = c.Sync(ctx, files, opts) })
		check("no-op", cs, err, resource.Unchanged)
		timed(&noopPrune, func() { cs, err = c.Sync(ctx, files, prune) })
		check("no-op with prune", cs, err, resource.Unchanged)
		timed(&force, func() { cs, err = c.Sync(ctx, files, forced) })
		check("forced", cs, err, resource.Unchanged)

		b.StopTimer()
		cleanup(namespaces)
		// The same objects in other namespaces, through kubectl.
		kfiles, knamespaces := benchManifests(prefix + "k")
		dir := b.TempDir()
		for _, f := range kfiles {
			p := filepath.Join(dir, strings.ReplaceAll(f.Path, "/", "_"))
			if err := os.WriteFile(p, f.Data, 0o644); err != nil {
				b.Fatal(err)
			}
		}
		for _, d := range []*time.Duration{&kcold, &knoop} {
			timed(d, func() {
				if out, err := cp.Kubectl(ctx, "apply", "--server-side", "-f", dir); err != nil {
					b.Fatalf("%v: %s", err, out)
				}
			})
			settle(knamespaces)
		}
		cleanup(knamespaces)
		b.StartTimer()
	}
	n := float64(b.N)
	b.ReportMetric(cold.Seconds()/n, "cold-s")
	b.ReportMetric(noop.Seconds()/n, "noop-s")
	b.ReportMetric(noopPrune.Seconds()/n, "noop-prune-s")
	b.ReportMetric(force.Seconds()/n, "forced-s")
	b.ReportMetric(kcold.Seconds()/n, "kubectl-ssa-cold-s")
	b.ReportMetric(knoop.Seconds()/n, "kubectl-ssa-noop-s")
}
