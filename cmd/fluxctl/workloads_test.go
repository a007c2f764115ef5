package main

import (
	"bytes"
	"testing"
	"text/tabwriter"

	"github.com/fluxd/fluxd/kube/resource"
	"github.com/fluxd/fluxd/server/api"
)

func mustID(t *testing.T, s string) resource.ID {
	t.Helper()
	id, err := resource.ParseID(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// The IMAGE column shows the live image, and git's beside it when the two
// differ.
func TestWriteWorkloads(t *testing.T) {
	ws := []api.ControllerStatus{
		{ID: mustID(t, "shop:deployment/cart"), Status: api.StatusReady, Rollout: api.RolloutStatus{Desired: 1, Ready: 1}, Locked: true,
			Containers: []api.Container{{Name: "cart", Current: api.Info{ID: "ghcr.io/shop/cart:2.3.0"}}}},
		{ID: mustID(t, "shop:deployment/web"), Status: api.StatusReady, Rollout: api.RolloutStatus{Desired: 2, Ready: 2},
			Containers: []api.Container{
				{Name: "nginx", Current: api.Info{ID: "nginx:1.27"}, RepoImage: "nginx:1.28"},
				{Name: "sidecar", Current: api.Info{ID: "envoy:1.30"}},
			}},
		{ID: mustID(t, "shop:cronjob/empty"), Status: api.StatusUnknown, ReadOnly: api.ReadOnlyMissing, Containers: []api.Container{}},
	}
	var b bytes.Buffer
	w := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	writeWorkloads(w, ws)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	want := `WORKLOAD              CONTAINER  IMAGE                          RELEASE              POLICY
shop:deployment/cart  cart       ghcr.io/shop/cart:2.3.0        ready                locked
shop:deployment/web   nginx      nginx:1.27 (repo: nginx:1.28)  ready                
                      sidecar    envoy:1.30                                          
shop:cronjob/empty                                              unknown [NotInRepo]  
`
	if got := b.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestContainerImage(t *testing.T) {
	for _, c := range []struct {
		live, repo, want string
	}{
		{"nginx:1.27", "", "nginx:1.27"},
		{"nginx:1.27", "nginx:1.27", "nginx:1.27"},
		{"nginx:1.27", "nginx:1.28", "nginx:1.27 (repo: nginx:1.28)"},
	} {
		if got := containerImage(api.Container{Current: api.Info{ID: api.ImageRef(c.live)}, RepoImage: c.repo}); got != c.want {
			t.Errorf("live %q, repo %q: %q, want %q", c.live, c.repo, got, c.want)
		}
	}
}
