package manifest

import (
	"crypto/sha256"
	"fmt"
	"sort"
	"strconv"

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

// canonical is a digest of what a node decodes to: mappings with their pairs
// in any order, scalars as resolved tag and value, anchors and aliases by
// name. Comments and styles do not count.
func canonical(n *yaml.Node) [sha256.Size]byte {
	h := sha256.New()
	write := func(parts ...string) {
		for _, p := range parts {
			fmt.Fprintf(h, "%d:%s", len(p), p)
		}
	}
	write(strconv.Itoa(int(n.Kind)), n.Anchor)
	switch n.Kind {
	case yaml.AliasNode:
		write(n.Value)
	case yaml.ScalarNode:
		write(n.ShortTag(), n.Value)
	case yaml.DocumentNode, yaml.SequenceNode:
		write(n.ShortTag())
		for _, c := range n.Content {
			d := canonical(c)
			h.Write(d[:])
		}
	case yaml.MappingNode:
		write(n.ShortTag())
		pairs := make([]string, 0, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := canonical(n.Content[i]), canonical(n.Content[i+1])
			pairs = append(pairs, string(k[:])+string(v[:]))
		}
		sort.Strings(pairs)
		for _, p := range pairs {
			h.Write([]byte(p))
		}
	}
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}
