package filter_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fluxd/fluxd/images"
	"github.com/fluxd/fluxd/images/filter"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in, want string // want "" means a parse error
		kind     filter.Kind
	}{
		{"", "glob:*", filter.Glob},
		{"*", "glob:*", filter.Glob},
		{"1.2.*", "glob:1.2.*", filter.Glob},
		{"glob:", "glob:*", filter.Glob},
		{"glob:v1.*-alpine", "glob:v1.*-alpine", filter.Glob},
		{"glob:[", "", ""},
		{"semver:~1.2", "semver:~1.2", filter.Semver},
		{"semver:>=2.0 <3", "semver:>=2.0 <3", filter.Semver},
		{"semver:", "", ""},
		{"semver:not a version", "", ""},
		{"regexp:^v[0-9]+$", "regexp:^v[0-9]+$", filter.Regexp},
		{"regex:^v[0-9]+$", "regexp:^v[0-9]+$", filter.Regexp},
		{"regexp:(", "", ""},
		{"regexp:", "", ""},
		{"sem:1.2", "", ""}, // a typo, not a glob that can never match
	} {
		f, err := filter.Parse(tc.in)
		if tc.want == "" {
			if err == nil || !errors.Is(err, filter.ErrBadFilter) || !strings.Contains(err.Error(), tc.in) {
				t.Errorf("Parse(%q): want an error naming the filter, got %v", tc.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if f.String() != tc.want || f.Kind() != tc.kind {
			t.Errorf("Parse(%q) = %s (%s), want %s (%s)", tc.in, f, f.Kind(), tc.want, tc.kind)
		}
	}
	if (filter.Filter{}).String() != "glob:*" {
		t.Errorf("the zero filter is %s", filter.Filter{})
	}
}

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		filter string
		yes    []string
		no     []string
	}{
		{"glob:*", []string{"1.0", "master-abc123", "v2"}, []string{"latest", "LATEST"}},
		{"glob:1.2.*", []string{"1.2.0", "1.2.10"}, []string{"1.3.0", "1.2", "latest"}},
		{"glob:latest", []string{"latest"}, []string{"1.0"}},
		{"glob:master-*", []string{"master-abc"}, []string{"main-abc"}},
		{"semver:~1.2", []string{"1.2.0", "1.2.9", "v1.2.3"}, []string{"1.3.0", "1.1.9", "latest", "master", "1.2.1-rc.1"}},
		{"semver:>=1.2.0-0", []string{"1.2.1-rc.1", "2.0.0"}, []string{"1.1.0"}},
		{"semver:*", []string{"0.0.1", "10.2.3"}, []string{"latest", "abc"}},
		{"regexp:^v[0-9]+$", []string{"v1", "v22"}, []string{"v1.0", "1", "latest"}},
		{"regex:prod", []string{"prod-1", "x-prod"}, []string{"dev-1"}},
		{"regexp:.*", []string{"anything"}, []string{"latest"}},
	} {
		f := filter.MustParse(tc.filter)
		for _, tag := range tc.yes {
			if !f.Match(tag) {
				t.Errorf("%s should match %q", tc.filter, tag)
			}
		}
		for _, tag := range tc.no {
			if f.Match(tag) {
				t.Errorf("%s should not match %q", tc.filter, tag)
			}
		}
	}
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func info(tag string, hoursAfter int) images.Info {
	i := images.Info{ID: "ghcr.io/shop/cart:" + tag}
	if hoursAfter >= 0 {
		i.CreatedAt = t0.Add(time.Duration(hoursAfter) * time.Hour)
	}
	return i
}

func tags(infos []images.Info) []string {
	out := make([]string, len(infos))
	for i, in := range infos {
		out[i] = in.Tag()
	}
	return out
}

func TestApplyOrders(t *testing.T) {
	repo := []images.Info{
		info("1.9.0", 5),
		info("1.10.0", 3), // built before 1.9.0 (a backport order)
		info("1.10", 3),
		info("2.0.0-rc.1", 9),
		info("latest", 10),
		info("master-abc", 8),
		info("nodate-2.1.0", -1),
		info("2.1.0", -1), // no creation time
		info("1.8.0", 1),
		info("b-same", 2),
		info("a-same", 2),
	}
	for _, tc := range []struct {
		filter string
		want   []string
	}{
		// By creation time, newest first; no date last; ties by ref;
		// latest left out.
		{"glob:*", []string{"2.0.0-rc.1", "master-abc", "1.9.0", "1.10", "1.10.0", "a-same", "b-same", "1.8.0", "2.1.0", "nodate-2.1.0"}},
		{"glob:1.*", []string{"1.9.0", "1.10", "1.10.0", "1.8.0"}},
		{"glob:latest", []string{"latest"}},
		{"regexp:^1\\.", []string{"1.9.0", "1.10", "1.10.0", "1.8.0"}},
		// By version, highest first; 1.10.0 before 1.10 (more explicit);
		// an undated version last even when highest.
		{"semver:>=1.0", []string{"1.10.0", "1.10", "1.9.0", "1.8.0", "2.1.0"}},
		{"semver:~1.9", []string{"1.9.0"}},
		{"semver:>=2.0.0-0", []string{"2.0.0-rc.1", "2.1.0"}},
	} {
		got := tags(filter.MustParse(tc.filter).Apply(repo))
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s:\n got %v\nwant %v", tc.filter, got, tc.want)
		}
	}
	// Apply does not reorder its input.
	if repo[0].Tag() != "1.9.0" {
		t.Error("Apply modified its input")
	}
}

func TestLatest(t *testing.T) {
	repo := []images.Info{info("1.0.0", 1), info("1.1.0", 2), info("1.2.0", -1), info("latest", 9)}
	for _, tc := range []struct {
		filter string
		want   string // "" means none
	}{
		{"glob:*", "1.1.0"},
		{"semver:^1", "1.1.0"}, // 1.2.0 is higher but has no creation time
		{"semver:~1.2", ""},
		{"glob:9.*", ""},
		{"glob:latest", "latest"},
	} {
		got, ok := filter.Latest(filter.MustParse(tc.filter), repo)
		if ok != (tc.want != "") || (ok && got.Tag() != tc.want) {
			t.Errorf("Latest(%s) = %q, %v; want %q", tc.filter, got.Tag(), ok, tc.want)
		}
	}
	if _, ok := filter.Latest(filter.All, nil); ok {
		t.Error("Latest of nothing")
	}
}

func TestLess(t *testing.T) {
	f := filter.MustParse("semver:*")
	if !f.Less(info("1.10.0", 1), info("1.9.0", 2)) || f.Less(info("1.9.0", 2), info("1.10.0", 1)) {
		t.Error("semver Less")
	}
	if !filter.All.Less(info("a", 2), info("b", 1)) {
		t.Error("created Less")
	}
	if filter.All.Less(info("a", 1), info("a", 1)) {
		t.Error("Less of equal images")
	}
}

func TestSplitRef(t *testing.T) {
	for _, tc := range []struct{ in, repo, tag, digest string }{
		{"nginx", "nginx", "", ""},
		{"nginx:1.27", "nginx", "1.27", ""},
		{"localhost:5000/app", "localhost:5000/app", "", ""},
		{"localhost:5000/app:1.0", "localhost:5000/app", "1.0", ""},
		{"ghcr.io/a/b@sha256:abc", "ghcr.io/a/b", "", "sha256:abc"},
		{"ghcr.io/a/b:1@sha256:abc", "ghcr.io/a/b", "1", "sha256:abc"},
	} {
		r, tg, d := images.SplitRef(tc.in)
		if r != tc.repo || tg != tc.tag || d != tc.digest {
			t.Errorf("SplitRef(%q) = %q %q %q", tc.in, r, tg, d)
		}
	}
}
