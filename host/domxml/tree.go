package domxml

import (
	"bytes"
	"cmp"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"slices"
)

// node is one element of the document with the byte offsets of its parts,
// so edits can be made to the text around it without re-encoding anything.
type node struct {
	name     string // local name; namespaced elements get "" so they never match
	attrs    map[string]string
	start    int // offset of '<'
	openEnd  int // offset just after the start tag's '>'
	closeBeg int // offset of the end tag's '<' (== end when self-closing)
	end      int // offset just after the element
	selfEnd  bool
	parent   *node
	children []*node
	text     bytes.Buffer // character data directly inside
}

func (n *node) child(name string) *node {
	for _, c := range n.children {
		if c.name == name {
			return c
		}
	}
	return nil
}

func (n *node) all(name string) []*node {
	var out []*node
	for _, c := range n.children {
		if c.name == name {
			out = append(out, c)
		}
	}
	return out
}

// walk calls f for n and every element below it, depth first.
func (n *node) walk(f func(*node)) {
	f(n)
	for _, c := range n.children {
		c.walk(f)
	}
}

// parse reads doc into a tree of elements with offsets. It checks that the
// document is well-formed XML with one root element.
func parse(doc []byte) (*node, error) {
	d := xml.NewDecoder(bytes.NewReader(doc))
	d.Strict = true
	var root, cur *node
	for {
		before := int(d.InputOffset())
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("parse domain XML: %w", err)
		}
		after := int(d.InputOffset())
		switch t := tok.(type) {
		case xml.StartElement:
			if cur == nil && root != nil {
				return nil, errors.New("parse domain XML: more than one root element")
			}
			n := &node{start: before, openEnd: after, parent: cur, attrs: map[string]string{}}
			if t.Name.Space == "" {
				n.name = t.Name.Local
			}
			for _, a := range t.Attr {
				if a.Name.Space == "" {
					n.attrs[a.Name.Local] = a.Value
				}
			}
			if cur == nil {
				root = n
			} else {
				cur.children = append(cur.children, n)
			}
			cur = n
		case xml.EndElement:
			cur.closeBeg, cur.end = before, after
			cur.selfEnd = before == after // a synthesized end of <x/>
			cur = cur.parent
		case xml.CharData:
			if cur == nil {
				if len(bytes.TrimSpace(t)) != 0 {
					return nil, errors.New("parse domain XML: text outside the root element")
				}
				continue
			}
			cur.text.Write(t)
		}
	}
	if root == nil {
		return nil, errors.New("parse domain XML: no root element")
	}
	if cur != nil {
		return nil, errors.New("parse domain XML: unexpected end of document")
	}
	return root, nil
}

// edit replaces doc[start:end] with text.
type edit struct {
	start, end int
	text       string
}

// apply performs non-overlapping edits on doc.
func apply(doc []byte, edits []edit) ([]byte, error) {
	sortEdits(edits)
	var out bytes.Buffer
	pos := 0
	for _, e := range edits {
		if e.start < pos {
			return nil, fmt.Errorf("apply edits: overlap at offset %d", e.start)
		}
		out.Write(doc[pos:e.start])
		out.WriteString(e.text)
		pos = e.end
	}
	out.Write(doc[pos:])
	return out.Bytes(), nil
}

func sortEdits(edits []edit) {
	// Insertions (empty spans) go before a removal starting at the same
	// offset; insertions at one offset keep the order they were made in.
	slices.SortStableFunc(edits, func(a, b edit) int {
		if c := cmp.Compare(a.start, b.start); c != 0 {
			return c
		}
		return cmp.Compare(a.end, b.end)
	})
}

// lineStart returns the offset where the whitespace before offset pos begins
// on its line, and the indentation found there. When something other than
// spaces and tabs precedes pos on its line, it returns pos and "".
func lineStart(doc []byte, pos int) (int, string) {
	i := pos
	for i > 0 && (doc[i-1] == ' ' || doc[i-1] == '\t') {
		i--
	}
	if i == 0 || doc[i-1] == '\n' {
		return i, string(doc[i:pos])
	}
	return pos, ""
}

// removal deletes element n together with its line: the newline before it
// and its indentation, when the element starts a line of its own.
func removal(doc []byte, n *node) edit {
	ls, _ := lineStart(doc, n.start)
	if ls > 0 && doc[ls-1] == '\n' {
		ls--
		if ls > 0 && doc[ls-1] == '\r' {
			ls--
		}
		return edit{ls, n.end, ""}
	}
	return edit{n.start, n.end, ""}
}

func (n *node) allOrNil(name string) []*node {
	if n == nil {
		return nil
	}
	return n.all(name)
}
