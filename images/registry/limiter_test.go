package registry

import (
	"math"
	"testing"
	"time"
)

// The limiter takes the time in every call, so this test drives it with a
// fake clock: no sleeping.
func TestLimiterBackoffAndRecovery(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newLimiter(10, 4)
	rate := func(at time.Time) float64 { cur, _, _ := l.state(at); return cur }

	// The burst goes at once, then one request per 100ms.
	for i := range 4 {
		if wait, _, _, paused := l.reserve(t0); wait != 0 || paused {
			t.Fatalf("request %d of the burst waits %s", i, wait)
		}
	}
	if wait, _, _, _ := l.reserve(t0); wait != 100*time.Millisecond {
		t.Fatalf("after the burst: wait %s, want 100ms", wait)
	}

	// A 429 with Retry-After 20s: paused for 20s, rate halved.
	at := t0.Add(time.Second)
	l.penalize(at, at.Add(-50*time.Millisecond), 20*time.Second)
	if _, _, until, paused := l.reserve(at.Add(19 * time.Second)); !paused || !until.Equal(at.Add(20*time.Second)) {
		t.Fatalf("not paused until the Retry-After: %v %s", paused, until)
	}
	if got := rate(at); got != 5 {
		t.Fatalf("rate %v after a 429, want 5", got)
	}
	// Other requests of the same burst answered 429 too: sent before the
	// halving, they only extend the pause.
	l.penalize(at.Add(10*time.Millisecond), at.Add(-20*time.Millisecond), 21*time.Second)
	if got := rate(at); got != 5 {
		t.Fatalf("rate %v after a second 429 of the same burst, want 5", got)
	}
	resume := at.Add(10*time.Millisecond + 21*time.Second)
	if _, _, _, paused := l.reserve(resume.Add(-time.Millisecond)); !paused {
		t.Fatal("the pause was not extended")
	}
	if _, _, _, paused := l.reserve(resume); paused {
		t.Fatal("still paused after the Retry-After")
	}
	// The burst shrank with the rate: 2 at once, then one per 200ms.
	l2 := resume.Add(time.Second)
	for range 2 {
		if wait, _, _, _ := l.reserve(l2); wait != 0 {
			t.Fatalf("reduced burst: wait %s", wait)
		}
	}
	if wait, _, _, _ := l.reserve(l2); wait != 200*time.Millisecond {
		t.Fatalf("at the halved rate: wait %s, want 200ms", wait)
	}

	// A request sent after the halving that is rate-limited again halves
	// again; no Retry-After means DefaultPause.
	at2 := resume.Add(2 * time.Second)
	l.penalize(at2, at2.Add(-10*time.Millisecond), 0)
	if got := rate(at2); got != 2.5 {
		t.Fatalf("rate %v after a second 429, want 2.5", got)
	}
	if _, _, until, _ := l.reserve(at2); !until.Equal(at2.Add(DefaultPause)) {
		t.Fatalf("pause without Retry-After until %s, want %s", until, at2.Add(DefaultPause))
	}

	// Recovery: +10% per minute, counted from the end of the pause.
	end := at2.Add(DefaultPause)
	for _, tc := range []struct {
		after time.Duration
		want  float64
	}{
		{0, 2.5},
		{59 * time.Second, 2.5},
		{time.Minute, 2.75},
		{5 * time.Minute, 2.5 * math.Pow(1.1, 5)},
		{30 * time.Minute, 10}, // capped at the configured rate
	} {
		if got := rate(end.Add(tc.after)); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("%s after the pause: rate %v, want %v", tc.after, got, tc.want)
		}
	}

	// Many 429s never take the rate below the floor, nor a pause beyond
	// the cap.
	at3 := end.Add(time.Hour)
	for i := range 20 {
		now := at3.Add(time.Duration(i) * time.Second)
		l.penalize(now, now, 10*time.Hour)
	}
	if got := rate(at3); got != MinRate {
		t.Errorf("rate %v, want the floor %v", got, MinRate)
	}
	if _, _, until, _ := l.reserve(at3); until.Sub(at3.Add(19*time.Second)) != MaxPause {
		t.Errorf("pause %s, want the cap %s", until.Sub(at3), MaxPause)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"30", 30 * time.Second},
		{"-1", 0},
		{"soon", 0},
		{"Thu, 01 Jan 2026 12:01:30 GMT", 90 * time.Second},
		{"Thu, 01 Jan 2026 11:00:00 GMT", 0},
	} {
		if got := parseRetryAfter(tc.in, now); got != tc.want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestParseDockerConfig(t *testing.T) {
	for _, tc := range []struct {
		in   string
		host string
		user string
	}{
		{`{"auths":{"https://index.docker.io/v1/":{"auth":"a2ltOnB3"}}}`, "index.docker.io", "kim"},
		{`{"auths":{"docker.io":{"username":"kim","password":"pw"}}}`, "index.docker.io", "kim"},
		{`{"auths":{"ghcr.io":{"username":"kim","password":"pw"}},"credsStore":"desktop"}`, "ghcr.io", "kim"},
		{`{"https://quay.io":{"auth":"a2ltOnB3","email":"k@x"}}`, "quay.io", "kim"},
		{`{"auths":{"GHCR.IO":{"username":"kim","password":"pw"}}}`, "ghcr.io", "kim"},
	} {
		cfg, err := parseDockerConfig([]byte(tc.in))
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		a, ok := cfg.lookup(tc.host)
		if !ok || a.Username != tc.user {
			t.Errorf("%s: lookup(%s) = %+v, %v", tc.in, tc.host, a, ok)
		}
	}
	if cfg, err := parseDockerConfig([]byte(`{"auths":{"ghcr.io":{}}}`)); err != nil {
		t.Error(err)
	} else if _, ok := cfg.lookup("ghcr.io"); ok {
		t.Error("an empty entry gave credentials")
	}
	for _, bad := range []string{`[]`, `{"auths":[]}`, `not json`} {
		if _, err := parseDockerConfig([]byte(bad)); err == nil {
			t.Errorf("%s parsed", bad)
		}
	}
}
