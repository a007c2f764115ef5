package harness

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

func TestControlPlane(t *testing.T) {
	binDir, err := KubeBinDir()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	start := time.Now()
	cp, err := StartControlPlane(ctx, binDir, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Stop()
	t.Logf("control plane ready in %s (files %s, etcd %s, kube-apiserver %s, kube-controller-manager %s)",
		time.Since(start).Round(time.Millisecond), cp.Startup.Files.Round(time.Millisecond),
		cp.Startup.Etcd.Round(time.Millisecond), cp.Startup.APIServer.Round(time.Millisecond),
		cp.Startup.ControllerManager.Round(time.Millisecond))

	cs, err := kubernetes.NewForConfig(cp.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}

	// The `kubernetes` Service gets the first address of the service range,
	// which the serving certificate covers.
	svc, err := cs.CoreV1().Services("default").Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if svc.Spec.ClusterIP != "10.96.0.1" {
		t.Errorf("kubernetes Service ClusterIP = %s, want 10.96.0.1", svc.Spec.ClusterIP)
	}

	const ns = "harness-test"
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "cm1", Namespace: ns},
		Data:       map[string]string{"key": "value"},
	}
	if _, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "cm1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Data["key"] != "value" {
		t.Errorf("ConfigMap data = %v, want key=value", got.Data)
	}

	out, err := cp.Kubectl(ctx, "get", "cm", "-n", ns, "-o", "name")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "configmap/cm1") {
		t.Errorf("kubectl get cm: %q does not list configmap/cm1", out)
	}

	// A Deployment gets a ReplicaSet only from the deployment controller in
	// kube-controller-manager.
	one := int32(1)
	labels := map[string]string{"app": "web"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "example.invalid/web:1"}}},
			},
		},
	}
	created, err := cs.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, ctx, 60*time.Second, "a ReplicaSet owned by Deployment web", func() (bool, error) {
		rss, err := cs.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, rs := range rss.Items {
			for _, o := range rs.OwnerReferences {
				if o.Kind == "Deployment" && o.UID == created.UID {
					return true, nil
				}
			}
		}
		return false, nil
	})

	// Namespaces stay Terminating unless the namespace controller in
	// kube-controller-manager empties and finalizes them.
	if err := cs.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	deleteStart := time.Now()
	waitUntil(t, ctx, 60*time.Second, "namespace "+ns+" to be gone", func() (bool, error) {
		_, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, err
	})
	t.Logf("namespace deleted in %s", time.Since(deleteStart).Round(time.Millisecond))

	stopStart := time.Now()
	cp.Stop()
	cp.Stop() // idempotent
	t.Logf("control plane stopped in %s", time.Since(stopStart).Round(time.Millisecond))
	addr := strings.TrimPrefix(cp.Host, "https://")
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("kube-apiserver still listens on %s after Stop", addr)
	}
	for _, p := range []*Process{cp.kcm, cp.apisrv, cp.etcd} {
		if exited, _ := p.Exited(); !exited {
			t.Errorf("%s still running after Stop", p.Name)
		}
	}
}

// waitUntil calls cond until it reports true, failing the test after timeout.
func waitUntil(t *testing.T, ctx context.Context, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for {
		ok, err := cond()
		if ok {
			return
		}
		last = err
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("timed out after %s waiting for %s (last error: %v)", timeout, what, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
