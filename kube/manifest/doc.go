// Package manifest reads Kubernetes objects from manifest files and edits
// them in place: policy annotations (SetPolicies) and container images
// (SetImage), so that fluxd can commit a change that touches only the lines
// it must.
//
// The package is pure: it depends on the YAML parser only (no client-go, no
// apimachinery). It parses a file into YAML nodes to find where things are
// (line and column of keys and values), then splices the original bytes at
// those places. It never re-encodes a document, so comments, key order,
// quoting, indentation, line endings (LF or CRLF), anchors and aliases, flow
// mappings, JSON layout, other documents and the file's trailing newline (or
// its absence) stay as the author wrote them.
//
// Every edit is checked before it is returned: the new bytes are parsed again
// and must decode to the old documents with exactly the intended change. An
// edit that cannot be made that way is refused with ErrUnsupported rather than
// written wrongly.
//
// Conventions of the edits:
//
//   - No change: when the file already says what is asked, the functions
//     return data itself (the same slice, so bytes.Equal(out, data) holds and
//     callers can skip the commit).
//   - An updated value keeps the quoting style of the value it replaces when
//     that style can hold the new value (plain, single- or double-quoted,
//     literal block). A new key or value is written plain when that reads
//     back as the same string (also for YAML 1.1 readers), else double-quoted:
//     "true" is written `"true"`. In JSON documents everything new is a JSON
//     string.
//   - A new annotation goes after the last existing one. A new annotations
//     mapping goes after metadata.name / generateName / namespace / labels
//     (whichever of them comes last), in the style of metadata (block or flow)
//     and with the file's indentation.
//   - Removing the last annotation removes the annotations key as well (not
//     `annotations: {}`), so that setting and then removing a policy gives back
//     the original file byte for byte. An `annotations: {}` or a null
//     `annotations:` that was there before goes too. A comment on the line
//     of a removed annotation goes with it; comment lines above it stay.
//   - A flow mapping of annotations (`annotations: {a: b}`) is rewritten
//     from the text of the pairs it keeps, as written, in its own layout
//     (one line, or one pair a line as in JSON); comments inside a multi-line
//     flow mapping of annotations are lost.
//
// Limits: an edit is refused (ErrUnsupported) when it would go through an
// alias or change an anchor other places use, when metadata, the
// annotations or the container use a merge key (<<), and when
// metadata.annotations is not a mapping. Objects and the edits do not look
// into merge keys. A stream of JSON objects that is not valid YAML (objects
// one after the other without `---`) does not parse. Files are UTF-8 (with or
// without a byte order mark).
package manifest
