package manifest

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	yaml "go.yaml.in/yaml/v3"
)

// render writes a new string: plain when that is safe, else double-quoted.
// In JSON documents it is always a JSON string.
func (e *editor) render(v string, flow bool) string {
	if !e.json && plainOK(v, flow) {
		return v
	}
	return doubleQuote(v)
}

// renderLike writes the string v in place of the value old, whose text
// starts at s, in old's quoting style when that style can hold v.
func (e *editor) renderLike(v string, old *yaml.Node, s int, c ctx) (string, error) {
	switch {
	case e.json || old.Kind != yaml.ScalarNode:
	case old.Style&yaml.DoubleQuotedStyle != 0:
		return doubleQuote(v), nil
	case old.Style&yaml.SingleQuotedStyle != 0:
		if singleOK(v) {
			return "'" + strings.ReplaceAll(v, "'", "''") + "'", nil
		}
		return doubleQuote(v), nil
	case old.Style&yaml.LiteralStyle != 0:
		_, indent, err := e.f.scanBlock(s, c.indent)
		if err != nil {
			return "", err
		}
		if indent <= c.indent {
			indent = max(c.indent, 0) + 2
		}
		if text, ok := literal(v, indent, e.f.lineBreak(s)); ok {
			return text, nil
		}
	}
	return e.render(v, c.flow), nil
}

// yaml11Words are plain words that YAML 1.1 readers (Kubernetes' own YAML
// decoding among them) take for booleans or null.
var yaml11Words = map[string]bool{
	"y": true, "yes": true, "n": true, "no": true, "true": true, "false": true,
	"on": true, "off": true, "null": true,
}

// plainOK reports whether v can be written as a plain scalar and be read back
// as the same string, by YAML 1.2 and 1.1 readers alike. It is cautious: a
// value it refuses is double-quoted, which is always right.
func plainOK(v string, flow bool) bool {
	if v == "" || !utf8.ValidString(v) || yaml11Words[strings.ToLower(v)] {
		return false
	}
	first, _ := utf8.DecodeRuneInString(v)
	if !unicode.IsLetter(first) && first != '/' {
		return false
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == 0x2028 || r == 0x2029 || r == 0xfeff || !unicode.IsPrint(r) && r != ' ' {
			return false
		}
		if flow && strings.ContainsRune(",[]{}?", r) {
			return false
		}
	}
	last := v[len(v)-1]
	if last == ' ' || last == ':' || strings.Contains(v, ": ") || strings.Contains(v, " #") || strings.Contains(v, "  ") {
		return false
	}
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(v), &n); err != nil || len(n.Content) != 1 {
		return false
	}
	s := n.Content[0]
	return s.Kind == yaml.ScalarNode && s.Style == 0 && s.ShortTag() == "!!str" && s.Value == v
}

// singleOK reports whether v can be single-quoted on one line.
func singleOK(v string) bool {
	if !utf8.ValidString(v) {
		return false
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == 0x2028 || r == 0x2029 || r == 0xfeff || !unicode.IsPrint(r) && r != ' ' {
			return false
		}
	}
	return true
}

// doubleQuote writes v as a double-quoted string that is valid YAML and
// valid JSON alike.
func doubleQuote(v string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range v {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == 0x2028 || r == 0x2029 || r == 0xfeff:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// literal writes v as a literal block scalar with its content indented by
// indent spaces, when that reads back as v.
func literal(v string, indent int, nl string) (string, bool) {
	if !strings.Contains(v, "\n") || strings.HasSuffix(v, "\n\n") || !singleOK(strings.ReplaceAll(v, "\n", "")) || strings.ContainsRune(v, '\t') {
		return "", false
	}
	chomp := "-"
	body := v
	if strings.HasSuffix(v, "\n") {
		chomp = ""
		body = v[:len(v)-1]
	}
	if body == "" || strings.HasPrefix(body, " ") || strings.Contains(body, "\n ") {
		return "", false
	}
	var b strings.Builder
	b.WriteString("|" + chomp)
	for _, line := range strings.Split(body, "\n") {
		b.WriteString(nl)
		if line != "" {
			b.WriteString(strings.Repeat(" ", indent) + line)
		}
	}
	return b.String(), true
}
