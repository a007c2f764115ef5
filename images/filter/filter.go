// Package filter parses tag filters (the value of a fluxcd.io/tag.<container>
// annotation) and orders images newest first. It is the one place that
// decides which tags a workload may move to and in what order, for
// list-images, releases and automation alike.
package filter

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"sort"
	"strings"

	"github.com/Masterminds/semver/v3"

	"github.com/fluxd/fluxd/images"
)

// Kind is the kind of a filter.
type Kind string

// The filter kinds, named by their prefixes.
const (
	Glob   Kind = "glob"
	Semver Kind = "semver"
	Regexp Kind = "regexp"
)

// ErrBadFilter is matched by every parse error.
var ErrBadFilter = errors.New("bad tag filter")

// Filter says which tags are acceptable, and how to order them.
// The zero Filter is glob:*.
type Filter struct {
	kind       Kind
	pattern    string
	re         *regexp.Regexp
	constraint *semver.Constraints
}

// All is glob:*, which accepts every tag but latest.
var All = Filter{kind: Glob, pattern: "*"}

// Parse reads a filter: "glob:<pattern>" (the default when there is no
// prefix; path.Match syntax), "semver:<constraint>" (Masterminds semver
// constraints, e.g. "~1.2", ">=2.0 <3"), "regexp:<re>" or "regex:<re>" (Go
// regexp syntax, unanchored). An empty string is glob:*. Any other prefix
// is an error: tags never contain a colon, so it can only be a typo.
func Parse(s string) (Filter, error) {
	kind, pattern := Glob, s
	if prefix, rest, ok := strings.Cut(s, ":"); ok {
		switch prefix {
		case "glob":
			kind, pattern = Glob, rest
		case "semver":
			kind, pattern = Semver, rest
		case "regexp", "regex":
			kind, pattern = Regexp, rest
		default:
			// A tag never holds a colon, so this is a mistyped prefix,
			// not a glob that could match.
			return Filter{}, fmt.Errorf("%w %q: unknown prefix %q (want glob:, semver: or regexp:)", ErrBadFilter, s, prefix)
		}
	}
	f := Filter{kind: kind, pattern: pattern}
	switch kind {
	case Glob:
		if f.pattern == "" {
			f.pattern = "*"
		}
		if _, err := path.Match(f.pattern, ""); err != nil {
			return Filter{}, fmt.Errorf("%w %q: glob pattern: %v", ErrBadFilter, s, err)
		}
	case Semver:
		if strings.TrimSpace(pattern) == "" {
			return Filter{}, fmt.Errorf("%w %q: empty semver constraint (e.g. semver:~1.2 or semver:>=2.0)", ErrBadFilter, s)
		}
		c, err := semver.NewConstraint(pattern)
		if err != nil {
			return Filter{}, fmt.Errorf("%w %q: semver constraint: %v", ErrBadFilter, s, err)
		}
		f.constraint = c
	case Regexp:
		if pattern == "" {
			return Filter{}, fmt.Errorf("%w %q: empty regular expression", ErrBadFilter, s)
		}
		re, err := regexp.Compile(pattern)
		if err != nil {
			return Filter{}, fmt.Errorf("%w %q: regular expression: %v", ErrBadFilter, s, err)
		}
		f.re = re
	}
	return f, nil
}

// MustParse is Parse for filters known to be valid; it panics otherwise.
func MustParse(s string) Filter {
	f, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return f
}

// Kind is the filter's kind.
func (f Filter) Kind() Kind {
	if f.kind == "" {
		return Glob
	}
	return f.kind
}

// String is the filter in its prefixed form, e.g. "glob:1.2.*", as fluxctl
// sends it and as it is written to annotations.
func (f Filter) String() string {
	if f.kind == "" {
		return "glob:*"
	}
	return string(f.kind) + ":" + f.pattern
}

// wantsLatest is true for the one filter that asks for the tag latest:
// glob:latest (as in Flux v1).
func (f Filter) wantsLatest() bool {
	return f.Kind() == Glob && f.pattern == "latest"
}

// Match reports whether a tag passes the filter. The tag "latest" passes
// only glob:latest, whatever the pattern.
func (f Filter) Match(tag string) bool {
	if strings.EqualFold(tag, "latest") && !f.wantsLatest() {
		return false
	}
	switch f.Kind() {
	case Semver:
		v, err := semver.NewVersion(tag)
		return err == nil && f.constraint.Check(v)
	case Regexp:
		return f.re.MatchString(tag)
	default:
		p := f.pattern
		if p == "" {
			p = "*"
		}
		ok, _ := path.Match(p, tag)
		return ok
	}
}

// Apply returns the images whose tags pass the filter, newest first (see
// Sort). The input is not modified.
func (f Filter) Apply(infos []images.Info) []images.Info {
	out := make([]images.Info, 0, len(infos))
	for _, i := range infos {
		if f.Match(i.Tag()) {
			out = append(out, i)
		}
	}
	f.Sort(out)
	return out
}

// Sort orders images newest first, in place:
//   - images without a creation time go last, whatever the filter;
//   - semver filters order by version, highest first (tags that are not
//     versions after those that are; of two equal versions such as 1.10
//     and 1.10.0 the longer, more explicit tag first);
//   - the other filters order by creation time, newest first;
//   - ties are broken by the ref, ascending, so the order is total.
func (f Filter) Sort(infos []images.Info) {
	ks := make([]keyed, len(infos))
	for i, info := range infos {
		ks[i] = f.key(info)
	}
	sort.SliceStable(ks, func(i, j int) bool { return f.compare(&ks[i], &ks[j]) < 0 })
	for i := range ks {
		infos[i] = ks[i].info
	}
}

// Less reports whether a sorts before b under Sort: a is newer.
func (f Filter) Less(a, b images.Info) bool {
	ka, kb := f.key(a), f.key(b)
	return f.compare(&ka, &kb) < 0
}

type keyed struct {
	info images.Info
	tag  string
	v    *semver.Version // for semver filters, nil if the tag is not a version
}

func (f Filter) key(info images.Info) keyed {
	k := keyed{info: info, tag: info.Tag()}
	if f.Kind() == Semver {
		k.v, _ = semver.NewVersion(k.tag)
	}
	return k
}

// compare is negative when a is newer than b.
func (f Filter) compare(a, b *keyed) int {
	if az, bz := a.info.CreatedAt.IsZero(), b.info.CreatedAt.IsZero(); az != bz {
		if bz {
			return -1
		}
		return 1
	}
	if f.Kind() == Semver {
		switch {
		case a.v != nil && b.v == nil:
			return -1
		case a.v == nil && b.v != nil:
			return 1
		case a.v != nil && b.v != nil:
			if c := a.v.Compare(b.v); c != 0 {
				return -c
			}
			if len(a.tag) != len(b.tag) {
				return len(b.tag) - len(a.tag)
			}
		}
	} else if c := b.info.CreatedAt.Compare(a.info.CreatedAt); c != 0 {
		return c
	}
	return strings.Compare(a.info.ID, b.info.ID)
}

// Latest returns the newest image that passes the filter and has a
// creation time, for automation. ok is false when there is none: images
// without a creation time are never picked.
func Latest(f Filter, infos []images.Info) (images.Info, bool) {
	for _, i := range f.Apply(infos) {
		if !i.CreatedAt.IsZero() {
			return i, true
		}
	}
	return images.Info{}, false
}
