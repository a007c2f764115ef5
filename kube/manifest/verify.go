package manifest

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// check parses out, the edited file, and compares it with the old documents:
// all must decode the same except document doc, which must decode to the
// old one changed by mutate. Comments and styles are not compared; values,
// tags, anchors and aliases are.
func (f *file) check(out []byte, doc int, mutate func(map[*yaml.Node]*yaml.Node)) error {
	g, err := parseFile(out)
	if err != nil {
		return fmt.Errorf("%w: the edited file would not parse: %v", ErrUnsupported, err)
	}
	if len(g.docs) != len(f.docs) {
		return fmt.Errorf("%w: the edit would change the number of documents", ErrUnsupported)
	}
	for i := range f.docs {
		want := f.docs[i]
		if i == doc {
			copies := map[*yaml.Node]*yaml.Node{}
			want = clone(want, copies)
			mutate(copies)
		}
		if canonical(want) != canonical(g.docs[i]) {
			return fmt.Errorf("%w: the edit would change more than asked in document %d", ErrUnsupported, i+1)
		}
	}
	return nil
}

// clone copies a node tree, recording which copy each node got.
func clone(n *yaml.Node, copies map[*yaml.Node]*yaml.Node) *yaml.Node {
	c := *n
	copies[n] = &c
	c.Content = make([]*yaml.Node, len(n.Content))
	for i, child := range n.Content {
		c.Content[i] = clone(child, copies)
	}
	return &c
}

// canonical writes what a node decodes to: mappings with their pairs sorted,
// scalars as resolved tag and value, anchors and aliases by name.
func canonical(n *yaml.Node) string {
	var b strings.Builder
	writeCanonical(&b, n)
	return b.String()
}

func writeCanonical(b *strings.Builder, n *yaml.Node) {
	if n.Anchor != "" {
		b.WriteString("&" + n.Anchor + " ")
	}
	switch n.Kind {
	case yaml.DocumentNode:
		b.WriteString("doc(")
		for _, c := range n.Content {
			writeCanonical(b, c)
		}
		b.WriteString(")")
	case yaml.AliasNode:
		b.WriteString("*" + n.Value)
	case yaml.ScalarNode:
		b.WriteString(n.ShortTag() + " " + strconv.Quote(n.Value))
	case yaml.SequenceNode:
		b.WriteString(n.ShortTag() + "[")
		for _, c := range n.Content {
			writeCanonical(b, c)
			b.WriteString(", ")
		}
		b.WriteString("]")
	case yaml.MappingNode:
		var pairs []string
		for i := 0; i+1 < len(n.Content); i += 2 {
			pairs = append(pairs, canonical(n.Content[i])+": "+canonical(n.Content[i+1]))
		}
		sort.Strings(pairs)
		b.WriteString(n.ShortTag() + "{" + strings.Join(pairs, ", ") + "}")
	}
}
