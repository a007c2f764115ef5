package manifest

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// Big files and deep nesting stay fast.
func TestLargeFiles(t *testing.T) {
	var b strings.Builder
	for i := 0; i < 2000; i++ {
		b.WriteString(strings.Replace(simple, "name: app", "name: app-"+strconv.Itoa(i), 1))
		b.WriteString("---\n")
	}
	deep := strings.Repeat("[", 5000) + strings.Repeat("]", 5000)
	b.WriteString("kind: ConfigMap\nmetadata:\n  name: deep\ndata:\n  x: " + deep + "\n")
	data := []byte(b.String())
	start := time.Now()
	out, err := SetPolicies(data, mustID(t, "default:configmap/deep"), "default", map[string]*string{"locked": ptr("true")})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
	if want := strings.Replace(string(data), "  name: deep\n", "  name: deep\n  annotations:\n    fluxcd.io/locked: \"true\"\n", 1); string(out) != want {
		t.Errorf("unexpected output")
	}
}
