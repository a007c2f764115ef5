package fluxd_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLayering keeps the engines behind their packages: libgit2 only in
// gitstate, client-go only in kube, the registry client only in images, and
// the sync loop free of the API server.
func TestLayering(t *testing.T) {
	rules := []struct {
		dep     string // import path prefix
		allowed []string
	}{
		{"github.com/libgit2/git2go", []string{"github.com/fluxd/fluxd/gitstate"}},
		{"k8s.io/client-go", []string{"github.com/fluxd/fluxd/kube", "github.com/fluxd/fluxd/e2e"}},
		{"github.com/google/go-containerregistry", []string{"github.com/fluxd/fluxd/images", "github.com/fluxd/fluxd/e2e"}},
	}
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg, imports := fields[0], fields[1:]
		for _, imp := range imports {
			for _, r := range rules {
				if strings.HasPrefix(imp, r.dep) && !under(pkg, r.allowed) {
					t.Errorf("%s imports %s; only %v may", pkg, imp, r.allowed)
				}
			}
			if strings.HasPrefix(pkg, "github.com/fluxd/fluxd/sync") && strings.HasPrefix(imp, "github.com/fluxd/fluxd/server") {
				t.Errorf("%s imports %s: the sync loop must not depend on the API server", pkg, imp)
			}
			if strings.HasPrefix(pkg, "github.com/fluxd/fluxd/kube/resource") && strings.Contains(imp, ".") && !strings.HasPrefix(imp, "github.com/fluxd/fluxd/") {
				t.Errorf("%s imports %s: kube/resource must stay dependency-free", pkg, imp)
			}
		}
	}
}

func under(pkg string, prefixes []string) bool {
	for _, p := range prefixes {
		if pkg == p || strings.HasPrefix(pkg, p+"/") {
			return true
		}
	}
	return false
}
