package manifest

import (
	"bytes"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"unicode/utf8"

	yaml "go.yaml.in/yaml/v3"

	"github.com/fluxd/fluxd/kube/resource"
)

// SetPolicies sets (value non-nil) or removes (nil) policies of the object
// id in a manifest file and returns the new bytes; the file is not changed
// in any other way (see the package documentation).
//
// A policy is the annotation "<prefix><policy>". An update changes the
// annotation that already holds the policy, whichever spelling it has
// (fluxcd.io/<policy>, flux.weave.works/<policy>, and for tag.<container>
// also filter.fluxcd.io/<container>; when several do, the one that wins on
// reading: fluxcd.io/, then flux.weave.works/, then filter.fluxcd.io/). A
// new annotation gets the prefix the object's policies already use:
// flux.weave.works/ when all of them use it, else fluxcd.io/. Removing a
// policy removes every spelling of it.
//
// Policy names are those of resource (automated, locked, locked_msg,
// locked_user, ignore, tag.<container>); tag_all is for requests only and is
// refused, as are unknown names. When nothing changes the result is data
// itself.
func SetPolicies(data []byte, id resource.ID, defaultNamespace string, set map[string]*string) ([]byte, error) {
	names := make([]string, 0, len(set))
	for name, v := range set {
		if err := checkPolicy(name, v); err != nil {
			return nil, err
		}
		names = append(names, name)
	}
	sort.Strings(names)
	f, err := parseFile(data)
	if err != nil {
		return nil, err
	}
	o, err := f.find(id, defaultNamespace)
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return data, nil
	}
	metaIdx := keyIndex(o.m, "metadata")
	meta := o.m.Content[2*metaIdx+1]
	if err := f.editable(o.m, meta); err != nil {
		return nil, err
	}
	if meta.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%w: metadata of %s is not a mapping", ErrUnsupported, id)
	}
	if keyIndex(meta, "<<") >= 0 {
		return nil, fmt.Errorf("%w: metadata of %s uses a merge key (<<)", ErrUnsupported, id)
	}
	annsIdx := keyIndex(meta, "annotations")
	var anns *yaml.Node // nil: no annotations, or null ones
	if annsIdx >= 0 {
		anns = meta.Content[2*annsIdx+1]
		if err := f.editable(anns); err != nil {
			return nil, err
		}
		switch {
		case anns.Kind == yaml.ScalarNode && anns.Tag == "!!null":
			anns = nil
		case anns.Kind != yaml.MappingNode:
			return nil, fmt.Errorf("%w: metadata.annotations of %s is not a mapping", ErrUnsupported, id)
		case keyIndex(anns, "<<") >= 0:
			return nil, fmt.Errorf("%w: metadata.annotations of %s uses a merge key (<<)", ErrUnsupported, id)
		}
	}

	// What to do, pair by pair.
	p := plan{upd: map[int]string{}, del: map[int]bool{}}
	var keys []string
	if anns != nil {
		for i := 0; i+1 < len(anns.Content); i += 2 {
			keys = append(keys, resolve(anns.Content[i]).Value)
		}
	}
	prefix := policyPrefix(keys)
	for _, name := range names {
		v := set[name]
		spellings := []string{resource.AnnotationPrefix + name, resource.LegacyAnnotationPrefix + name}
		if c, ok := strings.CutPrefix(name, resource.PolicyTagPrefix); ok {
			spellings = append(spellings, resource.FilterAnnotationPrefix+c)
		}
		if v == nil {
			for i, k := range keys {
				if contains(spellings, k) {
					if err := f.replaceable(anns.Content[2*i+1]); err != nil {
						return nil, err
					}
					p.del[i] = true
				}
			}
			continue
		}
		chosen := ""
		for _, s := range spellings {
			if contains(keys, s) {
				chosen = s
				break
			}
		}
		if chosen == "" {
			p.add = append(p.add, [2]string{prefix + name, *v})
			continue
		}
		for i, k := range keys {
			if k != chosen {
				continue
			}
			vn := anns.Content[2*i+1]
			if isString(vn, *v) {
				continue
			}
			if err := f.replaceable(vn); err != nil {
				return nil, err
			}
			p.upd[i] = *v
		}
	}
	if len(p.upd)+len(p.del)+len(p.add) == 0 {
		return data, nil
	}
	p.dropAnns = anns != nil && len(p.add) == 0 && len(p.del) == len(keys)

	e := &editor{f: f, json: f.isJSON(o.doc)}
	if err := e.annotations(o.m, meta, annsIdx, anns, p); err != nil {
		return nil, fmt.Errorf("%s: %w", id, err)
	}
	return e.finish(o.doc, func(clone map[*yaml.Node]*yaml.Node) { p.apply(clone[meta]) })
}

// plan is what SetPolicies does to the annotations: update values (by pair
// index), delete pairs, add pairs, and drop the annotations when none are
// left.
type plan struct {
	upd      map[int]string
	del      map[int]bool
	add      [][2]string
	dropAnns bool
}

// apply makes the planned change to (a copy of) the metadata nodes, for
// checking the edit.
func (p plan) apply(meta *yaml.Node) {
	i := keyIndex(meta, "annotations")
	if p.dropAnns {
		meta.Content = append(meta.Content[:2*i], meta.Content[2*i+2:]...)
		return
	}
	var anns *yaml.Node
	if i >= 0 {
		anns = meta.Content[2*i+1]
	}
	if anns == nil || anns.Kind != yaml.MappingNode {
		anns = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		if i >= 0 {
			meta.Content[2*i+1] = anns
		} else {
			meta.Content = append(meta.Content, strNode("annotations"), anns)
		}
	}
	var content []*yaml.Node
	for j := 0; j+1 < len(anns.Content); j += 2 {
		if p.del[j/2] {
			continue
		}
		v := anns.Content[j+1]
		if s, ok := p.upd[j/2]; ok {
			v = replaced(v, s)
		}
		content = append(content, anns.Content[j], v)
	}
	for _, kv := range p.add {
		content = append(content, strNode(kv[0]), strNode(kv[1]))
	}
	anns.Content = content
}

func strNode(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }

// replaced is what replaceValue makes of old: the string s, with old's
// anchor.
func replaced(old *yaml.Node, s string) *yaml.Node {
	n := strNode(s)
	if old.Kind != yaml.AliasNode {
		n.Anchor = old.Anchor
	}
	return n
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

var containerNameRE = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`)

func checkPolicy(name string, v *string) error {
	switch name {
	case resource.PolicyAutomated, resource.PolicyLocked, resource.PolicyLockedMsg, resource.PolicyLockedUser, resource.PolicyIgnore:
	case resource.PolicyTagAll:
		return fmt.Errorf("policy %s is not an annotation: set %s<container> for each container", name, resource.PolicyTagPrefix)
	default:
		c, ok := strings.CutPrefix(name, resource.PolicyTagPrefix)
		if !ok || !containerNameRE.MatchString(c) || len(name) > 63 {
			return fmt.Errorf("unknown policy %q: want one of automated, locked, locked_msg, locked_user, ignore, tag.<container>", name)
		}
	}
	if v != nil && !utf8.ValidString(*v) {
		return fmt.Errorf("policy %s: value is not valid UTF-8", name)
	}
	return nil
}

// policyPrefix is the prefix new policy annotations get: the legacy one
// when the object's policies all use it, else the current one.
func policyPrefix(keys []string) string {
	legacy := false
	for _, k := range keys {
		if isPolicyKey(k, resource.AnnotationPrefix) {
			return resource.AnnotationPrefix
		}
		if isPolicyKey(k, resource.LegacyAnnotationPrefix) {
			legacy = true
		}
	}
	if legacy {
		return resource.LegacyAnnotationPrefix
	}
	return resource.AnnotationPrefix
}

func isPolicyKey(key, prefix string) bool {
	name, ok := strings.CutPrefix(key, prefix)
	if !ok {
		return false
	}
	switch name {
	case resource.PolicyAutomated, resource.PolicyLocked, resource.PolicyLockedMsg, resource.PolicyLockedUser, resource.PolicyIgnore:
		return true
	}
	return strings.HasPrefix(name, resource.PolicyTagPrefix) && len(name) > len(resource.PolicyTagPrefix)
}

// isString reports whether n is (an alias of) the string s.
func isString(n *yaml.Node, s string) bool {
	n = resolve(n)
	return n != nil && n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" && n.Value == s
}

// SetImage sets the image of one container (or init container) of the
// workload id and returns the new bytes; when the container already has that
// image the result is data itself. A missing container gives a
// *ContainerNotFoundError (errors.Is ErrContainerNotFound) naming the
// containers there are.
func SetImage(data []byte, id resource.ID, defaultNamespace, container, image string) ([]byte, error) {
	if image == "" || !utf8.ValidString(image) || strings.ContainsAny(image, " \t\r\n") {
		return nil, fmt.Errorf("invalid image %q", image)
	}
	f, err := parseFile(data)
	if err != nil {
		return nil, err
	}
	o, err := f.find(id, defaultNamespace)
	if err != nil {
		return nil, err
	}
	cs := containers(o.m, o.id.Kind)
	var have []string
	for _, c := range cs {
		name := scalar(get(c.m, "name"))
		have = append(have, name)
		if name != container {
			continue
		}
		i := keyIndex(c.m, "image")
		if keyIndex(c.m, "<<") >= 0 {
			return nil, fmt.Errorf("%w: container %q of %s uses a merge key (<<)", ErrUnsupported, container, id)
		}
		if i < 0 {
			return nil, fmt.Errorf("%w: container %q of %s has no image", ErrUnsupported, container, id)
		}
		vn := c.m.Content[2*i+1]
		if isString(vn, image) {
			return data, nil
		}
		if err := f.editable(f.podPath(o.m, o.id.Kind, c.m)...); err != nil {
			return nil, err
		}
		if err := f.replaceable(vn); err != nil {
			return nil, err
		}
		e := &editor{f: f, json: f.isJSON(o.doc)}
		if err := e.replaceValue(c.m, i, image); err != nil {
			return nil, fmt.Errorf("%s: %w", id, err)
		}
		return e.finish(o.doc, func(clone map[*yaml.Node]*yaml.Node) {
			clone[c.m].Content[2*i+1] = replaced(vn, image)
		})
	}
	return nil, &ContainerNotFoundError{ID: id, Container: container, Have: have}
}

// isJSON reports whether document doc is JSON: a flow mapping with
// double-quoted keys.
func (f *file) isJSON(doc int) bool {
	root := f.docs[doc].Content[0]
	return isFlow(root) && len(root.Content) > 0 && root.Content[0].Style&yaml.DoubleQuotedStyle != 0
}

// podPath is the nodes, as written, from an object down to one of its
// containers.
func (f *file) podPath(obj *yaml.Node, kind string, container *yaml.Node) []*yaml.Node {
	out := []*yaml.Node{obj}
	cur := obj
	for _, k := range resource.PodSpecPath(kind) {
		raw := get(cur, k)
		if raw == nil {
			return out
		}
		out = append(out, raw)
		cur = resolve(raw)
	}
	for _, list := range []string{"initContainers", "containers"} {
		seq := get(cur, list)
		if seq == nil {
			continue
		}
		for _, item := range resolve(seq).Content {
			if resolve(item) == container {
				return append(out, seq, item)
			}
		}
	}
	return out
}

// editable refuses nodes that are aliases, or anchors that aliases refer
// to: changing them in place would change other places too.
func (f *file) editable(nodes ...*yaml.Node) error {
	for _, n := range nodes {
		if n == nil {
			continue
		}
		if n.Kind == yaml.AliasNode {
			return fmt.Errorf("%w: the value at line %d is an alias (*%s) of an anchor other places use; edit the anchor", ErrUnsupported, n.Line, n.Value)
		}
		if n.Anchor != "" && f.aliased()[n] {
			return fmt.Errorf("%w: the value at line %d is an anchor (&%s) other places use", ErrUnsupported, n.Line, n.Anchor)
		}
	}
	return nil
}

// replaceable refuses a value that is an anchor aliases refer to; an alias
// itself may be replaced.
func (f *file) replaceable(n *yaml.Node) error {
	if n.Kind == yaml.AliasNode {
		return nil
	}
	return f.editable(n)
}

// aliased is the set of nodes that aliases refer to.
func (f *file) aliased() map[*yaml.Node]bool {
	out := map[*yaml.Node]bool{}
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.AliasNode && n.Alias != nil {
			out[n.Alias] = true
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	for _, d := range f.docs {
		walk(d)
	}
	return out
}

// edit replaces the bytes [start, end) with text.
type edit struct {
	start, end int
	text       string
	lines      bool // a deletion of whole lines
}

// editor collects the edits to one file.
type editor struct {
	f     *file
	json  bool // the document is JSON (or flow YAML): new strings are JSON strings
	edits []edit
}

func (e *editor) replace(start, end int, text string) {
	e.edits = append(e.edits, edit{start: start, end: end, text: text})
}

// finish applies the edits and checks the result: it must parse, and decode
// to the old documents except for document doc, which must decode to the
// old one changed by mutate (given a map from the old nodes to copies of
// them).
func (e *editor) finish(doc int, mutate func(map[*yaml.Node]*yaml.Node)) ([]byte, error) {
	sort.SliceStable(e.edits, func(i, j int) bool {
		a, b := e.edits[i], e.edits[j]
		if a.start != b.start {
			return a.start < b.start
		}
		return a.end < b.end
	})
	f := e.f
	data := f.data
	// Deletions that touch or overlap become one.
	var edits []edit
	for _, ed := range e.edits {
		if n := len(edits); n > 0 && ed.text == "" && edits[n-1].text == "" && ed.start <= edits[n-1].end && edits[n-1].end > edits[n-1].start {
			edits[n-1].end = max(edits[n-1].end, ed.end)
			edits[n-1].lines = edits[n-1].lines && ed.lines
			continue
		}
		edits = append(edits, ed)
	}
	var b bytes.Buffer
	b.Grow(len(data) + 256)
	prev := 0
	for _, ed := range edits {
		if ed.lines && ed.end == len(data) && !f.endsWithBreak() && ed.start > f.base {
			// Deleting the last lines of a file that does not end with a
			// line break: take the break before them, so it still does
			// not.
			switch {
			case ed.start >= 2 && data[ed.start-2] == '\r' && data[ed.start-1] == '\n':
				ed.start -= 2
			case data[ed.start-1] == '\n' || data[ed.start-1] == '\r':
				ed.start--
			}
		}
		if ed.start < prev || ed.end < ed.start {
			return nil, fmt.Errorf("%w: overlapping edits", ErrUnsupported)
		}
		b.Write(data[prev:ed.start])
		b.WriteString(ed.text)
		prev = ed.end
	}
	b.Write(data[prev:])
	out := b.Bytes()
	if bytes.Equal(out, data) {
		return data, nil
	}
	if err := e.f.check(out, doc, mutate); err != nil {
		return nil, err
	}
	return out, nil
}

// replaceValue replaces the value of pair i of mapping m with the string v,
// keeping its quoting style where it can.
func (e *editor) replaceValue(m *yaml.Node, i int, v string) error {
	f := e.f
	vn := m.Content[2*i+1]
	cc := f.childCtx(m)
	if isEmpty(vn) {
		p, err := f.pairEnd(m, i)
		if err != nil {
			return err
		}
		e.replace(p, p, " "+e.render(v, cc.flow))
		return nil
	}
	end, err := f.end(vn, cc)
	if err != nil {
		return err
	}
	s := f.contentStart(vn)
	prefix := ""
	if vn.Kind != yaml.ScalarNode || (vn.Style&yaml.TaggedStyle != 0 && vn.ShortTag() != "!!str") {
		// Not a string: replace the anchor and tag too, keeping the anchor.
		s = f.start(vn)
		if vn.Anchor != "" {
			prefix = "&" + vn.Anchor + " "
		}
	}
	text, err := e.renderLike(v, vn, s, cc)
	if err != nil {
		return err
	}
	e.replace(s, end, prefix+text)
	return nil
}

// annotations makes the planned change to the annotations of meta.
func (e *editor) annotations(obj, meta *yaml.Node, annsIdx int, anns *yaml.Node, p plan) error {
	f := e.f
	if p.dropAnns {
		return e.deletePair(meta, annsIdx)
	}
	if anns != nil && isFlow(anns) {
		return e.rewriteFlow(meta, annsIdx, anns, p)
	}
	if anns != nil {
		// A block mapping.
		for i, v := range p.upd {
			if err := e.replaceValue(anns, i, v); err != nil {
				return err
			}
		}
		for i := range p.del {
			if err := e.deletePair(anns, i); err != nil {
				return err
			}
		}
		if len(p.add) == 0 {
			return nil
		}
		last, err := f.pairEnd(anns, len(anns.Content)/2-1)
		if err != nil {
			return err
		}
		ind := strings.Repeat(" ", f.blockIndent(anns))
		var lines []string
		for _, kv := range p.add {
			lines = append(lines, ind+e.render(kv[0], false)+": "+e.render(kv[1], false))
		}
		e.insertLines(last, lines)
		return nil
	}

	// No annotations yet (or null ones): make them, with the added pairs.
	var items []string
	flow := isFlow(meta)
	for _, kv := range p.add {
		items = append(items, e.render(kv[0], flow)+": "+e.render(kv[1], flow))
	}
	if flow {
		open := f.contentStart(meta)
		firstKey := f.start(meta.Content[0])
		multi := bytes.ContainsAny(f.data[open:firstKey], "\r\n")
		if annsIdx >= 0 {
			// annotations: null
			k := meta.Content[2*annsIdx]
			ind := f.col0(f.start(k))
			text := e.flowMap(items, multi, ind, max(ind-f.lineIndent(open), 2), f.lineBreak(open))
			vn := meta.Content[2*annsIdx+1]
			if isEmpty(vn) {
				pe, err := f.pairEnd(meta, annsIdx)
				if err != nil {
					return err
				}
				e.replace(pe, pe, " "+text)
				return nil
			}
			end, err := f.end(vn, f.childCtx(meta))
			if err != nil {
				return err
			}
			e.replace(f.start(vn), end, text)
			return nil
		}
		after := anchorPair(meta)
		pe, err := f.pairEnd(meta, after)
		if err != nil {
			return err
		}
		ind := f.col0(f.start(meta.Content[2*after]))
		nl := f.lineBreak(open)
		sep := ", "
		if multi {
			sep = "," + nl + strings.Repeat(" ", ind)
		}
		e.replace(pe, pe, sep+e.render("annotations", true)+": "+e.flowMap(items, multi, ind, max(ind-f.lineIndent(open), 2), nl))
		return nil
	}

	step := f.step(obj, meta)
	if annsIdx >= 0 {
		// annotations: (null)
		k := meta.Content[2*annsIdx]
		vn := meta.Content[2*annsIdx+1]
		ind := strings.Repeat(" ", f.col0(f.start(k))+step)
		pe, err := f.pairEnd(meta, annsIdx)
		if err != nil {
			return err
		}
		if !isEmpty(vn) {
			s := f.start(vn)
			for s > 0 && isBlank(f.data[s-1]) {
				s--
			}
			e.replace(s, pe, "")
		}
		var lines []string
		for _, it := range items {
			lines = append(lines, ind+it)
		}
		e.insertLines(pe, lines)
		return nil
	}
	after := anchorPair(meta)
	pe, err := f.pairEnd(meta, after)
	if err != nil {
		return err
	}
	ind := f.blockIndent(meta)
	lines := []string{strings.Repeat(" ", ind) + "annotations:"}
	for _, it := range items {
		lines = append(lines, strings.Repeat(" ", ind+step)+it)
	}
	e.insertLines(pe, lines)
	return nil
}

// anchorPair is the pair of metadata a new annotations key goes after: the
// last of name, generateName, namespace and labels, else the last pair.
func anchorPair(meta *yaml.Node) int {
	after := -1
	for i := 0; i+1 < len(meta.Content); i += 2 {
		switch resolve(meta.Content[i]).Value {
		case "name", "generateName", "namespace", "labels":
			after = i / 2
		}
	}
	if after < 0 {
		after = len(meta.Content)/2 - 1
	}
	return after
}

// step is how much deeper the file indents a nested block mapping: as in
// metadata.labels, else as metadata under the object.
func (f *file) step(obj, meta *yaml.Node) int {
	if l := resolve(get(meta, "labels")); l != nil && l.Kind == yaml.MappingNode && !isFlow(l) && len(l.Content) > 0 {
		if s := f.blockIndent(l) - f.blockIndent(meta); s > 0 {
			return s
		}
	}
	if i := keyIndex(obj, "metadata"); i >= 0 {
		if s := f.blockIndent(meta) - f.col0(f.start(obj.Content[2*i])); s > 0 {
			return s
		}
	}
	return 2
}

// flowMap writes a new flow mapping of items: on one line, or (multi) one
// item a line, indented ind+step, the closing brace indented ind.
func (e *editor) flowMap(items []string, multi bool, ind, step int, nl string) string {
	if !multi {
		return "{" + strings.Join(items, ", ") + "}"
	}
	in := nl + strings.Repeat(" ", ind+step)
	return "{" + in + strings.Join(items, ","+in) + nl + strings.Repeat(" ", ind) + "}"
}

// rewriteFlow rewrites the flow mapping of annotations from the text of the
// pairs it keeps (as written), the updated and the new ones, keeping the
// layout around and between them.
func (e *editor) rewriteFlow(meta *yaml.Node, annsIdx int, anns *yaml.Node, p plan) error {
	f := e.f
	open := f.contentStart(anns)
	closeEnd, err := f.end(anns, f.childCtx(meta))
	if err != nil {
		return err
	}
	if open >= len(f.data) || f.data[open] != '{' {
		return errSpan
	}
	n := len(anns.Content) / 2
	var items []string
	for i := 0; i < n; i++ {
		if p.del[i] {
			continue
		}
		ks := f.start(anns.Content[2*i])
		pe, err := f.pairEnd(anns, i)
		if err != nil {
			return err
		}
		v, ok := p.upd[i]
		if !ok {
			items = append(items, string(f.data[ks:pe]))
			continue
		}
		sub := &editor{f: f, json: e.json}
		if err := sub.replaceValue(anns, i, v); err != nil {
			return err
		}
		ed := sub.edits[0]
		items = append(items, string(f.data[ks:ed.start])+ed.text+string(f.data[ed.end:pe]))
	}
	for _, kv := range p.add {
		items = append(items, e.render(kv[0], true)+": "+e.render(kv[1], true))
	}
	lead, trail, sep := "", "", ", "
	if n > 0 {
		first := f.start(anns.Content[0])
		lead = string(f.data[open+1 : first])
		last, err := f.pairEnd(anns, n-1)
		if err != nil {
			return err
		}
		trail = string(f.data[last : closeEnd-1])
		if t := strings.TrimLeft(trail, " \t\r\n"); strings.HasPrefix(t, ",") {
			i := len(trail) - len(t)
			trail = trail[:i] + trail[i+1:]
		}
		if n >= 2 {
			e0, err := f.pairEnd(anns, 0)
			if err != nil {
				return err
			}
			if s := string(f.data[e0:f.start(anns.Content[2])]); !strings.Contains(s, "#") {
				sep = s
			}
		} else if strings.ContainsAny(lead, "\r\n") {
			sep = "," + f.lineBreak(open) + strings.Repeat(" ", f.col0(first))
		}
	}
	e.replace(open, closeEnd, "{"+lead+strings.Join(items, sep)+trail+"}")
	return nil
}

// deletePair deletes pair i of mapping m: its lines in a block mapping, its
// text and a comma in a flow mapping.
func (e *editor) deletePair(m *yaml.Node, i int) error {
	f := e.f
	ks := f.start(m.Content[2*i])
	pe, err := f.pairEnd(m, i)
	if err != nil {
		return err
	}
	n := len(m.Content) / 2
	if isFlow(m) {
		switch {
		case i > 0:
			prev, err := f.pairEnd(m, i-1)
			if err != nil {
				return err
			}
			e.replace(prev, pe, "")
		case n > 1:
			e.replace(ks, f.start(m.Content[2]), "")
		default:
			e.replace(ks, pe, "")
		}
		return nil
	}
	ls := f.lineStart(ks)
	if strings.Trim(string(f.data[ls:ks]), " ") != "" {
		return fmt.Errorf("%w: a key at line %d does not start its line", ErrUnsupported, m.Content[2*i].Line)
	}
	e.edits = append(e.edits, edit{start: ls, end: f.afterEnd(pe), lines: true})
	return nil
}

// afterEnd is the start of the line after the one where a value ending at p
// ends. The end is usually after the value's last character, on its line;
// for a block scalar that keeps trailing empty lines it is on the last of
// them, at its start.
func (f *file) afterEnd(p int) int {
	if p > f.base && p != f.lineStart(p) {
		p--
	}
	return f.nextLine(p)
}

// insertLines inserts lines after the line holding offset p-1 (p is the end
// of a value), with that line's line break.
func (e *editor) insertLines(p int, lines []string) {
	f := e.f
	at := f.afterEnd(p)
	nl := f.lineBreak(max(p-1, f.base))
	if at == len(f.data) && !f.endsWithBreak() {
		e.replace(at, at, nl+strings.Join(lines, nl))
		return
	}
	e.replace(at, at, strings.Join(lines, nl)+nl)
}
