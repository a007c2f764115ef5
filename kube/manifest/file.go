package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"unicode/utf8"

	yaml "go.yaml.in/yaml/v3"
)

// ParseError is a manifest file that is not valid YAML (or JSON).
type ParseError struct {
	Line int // 1-based; 0 when the parser did not say
	Err  error
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("manifest does not parse: %v", e.Err)
}

func (e *ParseError) Unwrap() error { return e.Err }

var lineRE = regexp.MustCompile(`line (\d+)`)

// file is a parsed manifest file: its bytes, where each line starts, and its
// YAML documents as nodes.
type file struct {
	data  []byte
	base  int   // bytes before the YAML stream: a UTF-8 byte order mark
	lines []int // byte offset where each line starts; line 1 is lines[0]
	docs  []*yaml.Node
	nl    string // the line break new lines get: "\n" or "\r\n"
}

func parseFile(data []byte) (*file, error) {
	f := &file{data: data}
	if bytes.HasPrefix(data, []byte("\xef\xbb\xbf")) {
		f.base = 3
	}
	f.lines = lineStarts(data, f.base)
	f.nl = "\n"
	for i := f.base; i < len(data); i++ {
		if data[i] == '\n' {
			if i > 0 && data[i-1] == '\r' {
				f.nl = "\r\n"
			}
			break
		}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			pe := &ParseError{Err: err}
			if m := lineRE.FindStringSubmatch(err.Error()); m != nil {
				pe.Line, _ = strconv.Atoi(m[1])
			}
			return nil, pe
		}
		f.docs = append(f.docs, &doc)
	}
	return f, nil
}

// lineStarts finds the start of every line, with the YAML parser's idea of a
// line break: CR LF, CR, LF, NEL, LS and PS.
func lineStarts(data []byte, base int) []int {
	starts := []int{base}
	for i := base; i < len(data); {
		if w := breakWidth(data, i); w > 0 {
			i += w
			starts = append(starts, i)
			continue
		}
		i++
	}
	return starts
}

// breakWidth is the length of the line break at i, 0 if there is none.
func breakWidth(data []byte, i int) int {
	if i >= len(data) {
		return 0
	}
	switch c := data[i]; {
	case c == '\r':
		if i+1 < len(data) && data[i+1] == '\n' {
			return 2
		}
		return 1
	case c == '\n':
		return 1
	case c == 0xC2:
		if i+1 < len(data) && data[i+1] == 0x85 {
			return 2
		}
	case c == 0xE2:
		if i+2 < len(data) && data[i+1] == 0x80 && (data[i+2] == 0xA8 || data[i+2] == 0xA9) {
			return 3
		}
	}
	return 0
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' }

// blankz reports whether i is a blank, a line break or the end of the data.
func (f *file) blankz(i int) bool {
	return i >= len(f.data) || isBlank(f.data[i]) || breakWidth(f.data, i) > 0
}

// offset turns a node's 1-based line and column (in characters) into a byte
// offset.
func (f *file) offset(line, col int) int {
	if line < 1 {
		return f.base
	}
	if line > len(f.lines) {
		return len(f.data)
	}
	p := f.lines[line-1]
	for k := 1; k < col && p < len(f.data); k++ {
		_, w := utf8.DecodeRune(f.data[p:])
		p += w
	}
	return p
}

// lineOf is the 0-based index of the line holding offset p.
func (f *file) lineOf(p int) int {
	lo, hi := 0, len(f.lines)-1
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if f.lines[mid] <= p {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo
}

// col0 is the 0-based column (in characters) of offset p.
func (f *file) col0(p int) int {
	return utf8.RuneCount(f.data[f.lines[f.lineOf(p)]:p])
}

// lineStart is where the line holding p starts.
func (f *file) lineStart(p int) int { return f.lines[f.lineOf(p)] }

// nextLine is where the line after the one holding p starts, or the end of
// the data.
func (f *file) nextLine(p int) int {
	if l := f.lineOf(p); l+1 < len(f.lines) {
		return f.lines[l+1]
	}
	return len(f.data)
}

// lineBreak is the line break that ends the line holding p, or f.nl when that
// line is the last and has none. A CR LF file keeps CR LF on new lines.
func (f *file) lineBreak(p int) string {
	l := f.lineOf(p)
	if l+1 >= len(f.lines) {
		return f.nl
	}
	for i := f.lines[l]; i < f.lines[l+1]; i++ {
		if w := breakWidth(f.data, i); w > 0 {
			return string(f.data[i : i+w])
		}
	}
	return f.nl
}

// endsWithBreak reports whether the file's last line ends with a line break.
func (f *file) endsWithBreak() bool {
	return len(f.data) == f.base || f.lines[len(f.lines)-1] == len(f.data)
}

// lineIndent is the number of spaces that start the line holding p.
func (f *file) lineIndent(p int) int {
	i := f.lineStart(p)
	n := 0
	for i+n < len(f.data) && f.data[i+n] == ' ' {
		n++
	}
	return n
}

func (f *file) start(n *yaml.Node) int { return f.offset(n.Line, n.Column) }

// ctx is where a node sits: in a flow collection, or in a block collection
// indented by indent columns (continuation lines of a plain scalar, and the
// content of a block scalar, must be indented more).
type ctx struct {
	flow   bool
	indent int
}

func isFlow(n *yaml.Node) bool { return n.Style&yaml.FlowStyle != 0 }

// childCtx is the context of the children of a collection.
func (f *file) childCtx(n *yaml.Node) ctx {
	if isFlow(n) {
		return ctx{flow: true, indent: -1}
	}
	return ctx{indent: f.blockIndent(n)}
}

// blockIndent is the indentation of a block collection: the column of its
// keys, or of its dashes.
func (f *file) blockIndent(n *yaml.Node) int {
	if len(n.Content) == 0 {
		return f.col0(f.start(n))
	}
	first := f.start(n.Content[0])
	if n.Kind == yaml.MappingNode {
		return f.col0(first)
	}
	// A sequence: the dash before the first item.
	p := first - 1
	for p >= f.base && (isBlank(f.data[p]) || f.data[p] == '\n' || f.data[p] == '\r') {
		p--
	}
	if p >= f.base && f.data[p] == '-' {
		return f.col0(p)
	}
	return f.col0(first)
}

// isEmpty reports whether n is a null written as nothing at all (`key:`).
func isEmpty(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null" && n.Value == "" && n.Style == 0 && n.Anchor == ""
}

// properties skips an anchor (&a) and a tag (!t) at p, and the blanks after
// them; with lines, also line breaks and comments.
func (f *file) properties(p int, lines bool) int {
	d := f.data
	for p < len(d) && (d[p] == '&' || d[p] == '!') {
		anchor := d[p] == '&'
		for p < len(d) && !f.blankz(p) && !(anchor && isFlowIndicator(d[p])) {
			p++
		}
		p = f.skipSpace(p, lines)
	}
	return p
}

// skipSpace skips blanks, and with lines also line breaks and comments.
func (f *file) skipSpace(p int, lines bool) int {
	d := f.data
	for p < len(d) {
		switch {
		case isBlank(d[p]):
			p++
		case lines && breakWidth(d, p) > 0:
			p += breakWidth(d, p)
		case lines && d[p] == '#' && (p == f.base || f.blankz(p-1)):
			for p < len(d) && breakWidth(d, p) == 0 {
				p++
			}
		default:
			return p
		}
	}
	return p
}

func isFlowIndicator(c byte) bool {
	return c == ',' || c == '[' || c == ']' || c == '{' || c == '}'
}

// contentStart is where the node's own text starts, after its anchor and
// tag.
func (f *file) contentStart(n *yaml.Node) int {
	return f.properties(f.start(n), n.Kind != yaml.ScalarNode || n.Value != "")
}

var errSpan = fmt.Errorf("%w: cannot find where a value ends", ErrUnsupported)

// end is the offset just after the node's last character (comments after it
// are not part of it).
func (f *file) end(n *yaml.Node, c ctx) (int, error) {
	switch n.Kind {
	case yaml.AliasNode:
		return f.start(n) + 1 + len(n.Value), nil
	case yaml.ScalarNode:
		if n.Tag == "!!null" && n.Value == "" && n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0 {
			// Nothing but, maybe, an anchor or a tag.
			p := f.start(n)
			if p < len(f.data) && (f.data[p] == '&' || f.data[p] == '!') {
				for p < len(f.data) && !f.blankz(p) && !isFlowIndicator(f.data[p]) {
					p++
				}
				return p, nil
			}
			return p, nil
		}
		s := f.contentStart(n)
		switch {
		case n.Style&yaml.DoubleQuotedStyle != 0:
			return f.scanDouble(s)
		case n.Style&yaml.SingleQuotedStyle != 0:
			return f.scanSingle(s)
		case n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0:
			e, _, err := f.scanBlock(s, c.indent)
			return e, err
		case c.flow:
			return f.scanPlainFlow(s), nil
		default:
			return f.scanPlainBlock(s, c.indent), nil
		}
	case yaml.MappingNode, yaml.SequenceNode:
		cc := f.childCtx(n)
		if !isFlow(n) {
			if len(n.Content) == 0 {
				return 0, errSpan
			}
			if n.Kind == yaml.MappingNode {
				return f.pairEnd(n, len(n.Content)/2-1)
			}
			return f.end(n.Content[len(n.Content)-1], cc)
		}
		p := f.contentStart(n) + 1
		if len(n.Content) > 0 {
			var err error
			if n.Kind == yaml.MappingNode {
				p, err = f.pairEnd(n, len(n.Content)/2-1)
			} else {
				p, err = f.end(n.Content[len(n.Content)-1], cc)
			}
			if err != nil {
				return 0, err
			}
		}
		closer := byte('}')
		if n.Kind == yaml.SequenceNode {
			closer = ']'
		}
		for {
			p = f.skipSpace(p, true)
			if p < len(f.data) && f.data[p] == ',' {
				p++
				continue
			}
			break
		}
		if p < len(f.data) && f.data[p] == closer {
			return p + 1, nil
		}
		return 0, errSpan
	}
	return 0, errSpan
}

// pairEnd is the end of the i-th key/value pair of mapping m.
func (f *file) pairEnd(m *yaml.Node, i int) (int, error) {
	k, v := m.Content[2*i], m.Content[2*i+1]
	cc := f.childCtx(m)
	if !isEmpty(v) {
		return f.end(v, cc)
	}
	// `key:` with nothing after: the end is the colon.
	p, err := f.end(k, cc)
	if err != nil {
		return 0, err
	}
	q := f.skipSpace(p, cc.flow)
	if q < len(f.data) && f.data[q] == ':' {
		return q + 1, nil
	}
	return p, nil
}

func (f *file) scanDouble(s int) (int, error) {
	d := f.data
	if s >= len(d) || d[s] != '"' {
		return 0, errSpan
	}
	for i := s + 1; i < len(d); i++ {
		switch d[i] {
		case '\\':
			i++
		case '"':
			return i + 1, nil
		}
	}
	return 0, errSpan
}

func (f *file) scanSingle(s int) (int, error) {
	d := f.data
	if s >= len(d) || d[s] != '\'' {
		return 0, errSpan
	}
	for i := s + 1; i < len(d); i++ {
		if d[i] == '\'' {
			if i+1 < len(d) && d[i+1] == '\'' {
				i++
				continue
			}
			return i + 1, nil
		}
	}
	return 0, errSpan
}

// scanPlainFlow finds the end of a plain scalar in a flow collection.
func (f *file) scanPlainFlow(s int) int {
	d := f.data
	end := s
	for i := s; i < len(d); {
		if w := breakWidth(d, i); w > 0 {
			i += w
			continue
		}
		c := d[i]
		switch {
		case isBlank(c):
			i++
			continue
		case c == '#' && i > s && f.blankz(i-1):
			return end
		case c == ',' || c == '?' || c == '[' || c == ']' || c == '{' || c == '}':
			return end
		case c == ':' && f.blankz(i+1):
			return end
		}
		_, w := utf8.DecodeRune(d[i:])
		i += w
		end = i
	}
	return end
}

// scanPlainBlock finds the end of a plain scalar in block context: it may go
// on over more lines, each indented more than indent.
func (f *file) scanPlainBlock(s, indent int) int {
	d := f.data
	end := s
	p := s
	for {
		i := p
		stop := false
		for i < len(d) && breakWidth(d, i) == 0 {
			c := d[i]
			if (c == '#' && i > s && isBlank(d[i-1])) || (c == ':' && f.blankz(i+1)) {
				stop = true
				break
			}
			i++
		}
		e := i
		for e > p && isBlank(d[e-1]) {
			e--
		}
		if e > p {
			end = e
		}
		if stop || i >= len(d) {
			return end
		}
		// Is the next non-blank line a continuation?
		q := i
		for {
			q += breakWidth(d, q)
			if q >= len(d) {
				return end
			}
			j := q
			for j < len(d) && d[j] == ' ' {
				j++
			}
			ind := j - q
			for j < len(d) && d[j] == '\t' {
				j++
			}
			if j >= len(d) {
				return end
			}
			if breakWidth(d, j) > 0 {
				q = j
				continue
			}
			if d[j] == '#' || ind <= indent {
				return end
			}
			if ind == 0 && (bytes.HasPrefix(d[j:], []byte("---")) || bytes.HasPrefix(d[j:], []byte("..."))) && f.blankz(j+3) {
				return end
			}
			p = j
			break
		}
	}
}

// scanBlock finds the end of a literal or folded block scalar whose
// indicator is at s, and the indentation of its content.
func (f *file) scanBlock(s, indent int) (int, int, error) {
	d := f.data
	if s >= len(d) || (d[s] != '|' && d[s] != '>') {
		return 0, 0, errSpan
	}
	i := s + 1
	keep, explicit := false, 0
	for i < len(d) {
		switch c := d[i]; {
		case c == '+':
			keep = true
		case c == '-':
		case c >= '1' && c <= '9':
			explicit = int(c - '0')
		default:
			goto header
		}
		i++
	}
header:
	end := i
	contentIndent := 0
	if explicit > 0 {
		contentIndent = max(indent, 0) + explicit
	}
	trailing := end
	q := i
	for q < len(d) && breakWidth(d, q) == 0 {
		q++
	}
	for q < len(d) {
		q += breakWidth(d, q)
		if q >= len(d) {
			break
		}
		j := q
		for j < len(d) && d[j] == ' ' {
			j++
		}
		ind := j - q
		le := j
		for le < len(d) && breakWidth(d, le) == 0 {
			le++
		}
		blank := true
		for k := j; k < le; k++ {
			if !isBlank(d[k]) {
				blank = false
				break
			}
		}
		if blank {
			if contentIndent > 0 && ind > contentIndent {
				end = le
			}
			trailing = le
			q = le
			continue
		}
		if contentIndent == 0 {
			if ind <= indent {
				break
			}
			contentIndent = ind
		}
		if ind < contentIndent {
			break
		}
		end, trailing = le, le
		q = le
	}
	if keep {
		end = max(end, trailing)
	}
	return end, contentIndent, nil
}
