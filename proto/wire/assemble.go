package wire

import (
	"fmt"
)

// DefaultMetaTotal caps the metadata of one capture by default.
const DefaultMetaTotal = 128 << 20

// MetaItem is one complete item of metadata.
type MetaItem struct {
	Kind MetaKind
	Name string // "system/event" for MetaFormat, else ""
	Data []byte
}

// MetaAssembler joins MetaChunks into MetaItems on the host. It trusts
// nothing: chunks must come in order, one item at a time, each item once,
// within the size caps. Its first error is final. The zero value is ready.
type MetaAssembler struct {
	MaxTotal int64 // all items' bytes; 0 means DefaultMetaTotal
	MaxItems int   // 0 means MaxEvents + 16

	cur   *MetaItem // the item being received
	total uint64    // its declared size
	sum   int64     // declared bytes of all items begun
	seen  map[string]bool
	err   error
}

// maxItemSize bounds one item of each kind.
func maxItemSize(k MetaKind) (uint64, bool) {
	switch k {
	case MetaHeaderPage, MetaHeaderEvent, MetaFormat:
		return 64 << 10, true
	case MetaKallsyms:
		return 64 << 20, true
	case MetaPrintkFormats, MetaSavedCmdlines, MetaSavedTgids:
		return 16 << 20, true
	case MetaTraceClock, MetaUname:
		return MaxString, true
	}
	return 0, false
}

// Add takes the next chunk. It returns the item the chunk completes, or
// nil while the item is unfinished. The chunk must have been validated
// (by UnmarshalBinary); its Data is copied.
func (a *MetaAssembler) Add(c *MetaChunk) (*MetaItem, error) {
	if a.err != nil {
		return nil, a.err
	}
	item, err := a.add(c)
	if err != nil {
		a.err = fmt.Errorf("assemble metadata: %w", err)
		a.cur = nil
		return nil, a.err
	}
	return item, nil
}

func (a *MetaAssembler) add(c *MetaChunk) (*MetaItem, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	key := c.Kind.String() + " " + c.Name
	if a.cur == nil {
		if c.Offset != 0 {
			return nil, fmt.Errorf("%s: first chunk at offset %d: %w", key, c.Offset, ErrMalformed)
		}
		max, ok := maxItemSize(c.Kind)
		if !ok {
			return nil, fmt.Errorf("%s: unknown item kind: %w", key, ErrMalformed)
		}
		if c.Total > max {
			return nil, fmt.Errorf("%s: %d bytes over %d: %w", key, c.Total, max, ErrTooLarge)
		}
		if a.seen[key] {
			return nil, fmt.Errorf("%s: sent twice: %w", key, ErrMalformed)
		}
		maxItems, maxTotal := a.MaxItems, a.MaxTotal
		if maxItems <= 0 {
			maxItems = MaxEvents + 16
		}
		if maxTotal <= 0 {
			maxTotal = DefaultMetaTotal
		}
		if len(a.seen) >= maxItems {
			return nil, fmt.Errorf("%s: more than %d items: %w", key, maxItems, ErrTooLarge)
		}
		if a.sum+int64(c.Total) > maxTotal {
			return nil, fmt.Errorf("%s: metadata over %d bytes: %w", key, maxTotal, ErrTooLarge)
		}
		if a.seen == nil {
			a.seen = make(map[string]bool)
		}
		a.seen[key] = true
		a.sum += int64(c.Total)
		// Grow with what arrives, not with what the guest announces.
		a.cur = &MetaItem{Kind: c.Kind, Name: c.Name, Data: make([]byte, 0, min(c.Total, MaxChunk))}
		a.total = c.Total
	} else {
		switch {
		case c.Kind != a.cur.Kind || c.Name != a.cur.Name:
			return nil, fmt.Errorf("%s: chunk inside %s %s: %w", key, a.cur.Kind, a.cur.Name, ErrMalformed)
		case c.Total != a.total:
			return nil, fmt.Errorf("%s: size changed from %d to %d: %w", key, a.total, c.Total, ErrMalformed)
		case c.Offset != uint64(len(a.cur.Data)):
			return nil, fmt.Errorf("%s: chunk at offset %d, want %d: %w", key, c.Offset, len(a.cur.Data), ErrMalformed)
		}
	}
	a.cur.Data = append(a.cur.Data, c.Data...)
	if !c.Last {
		return nil, nil
	}
	item := a.cur
	a.cur = nil
	return item, nil
}

// End checks that no item was left unfinished, at MetaEnd.
func (a *MetaAssembler) End() error {
	if a.err != nil {
		return a.err
	}
	if a.cur != nil {
		a.err = fmt.Errorf("assemble metadata: %v %s: ended after %d of %d bytes: %w", a.cur.Kind, a.cur.Name, len(a.cur.Data), a.total, ErrMalformed)
		return a.err
	}
	return nil
}
