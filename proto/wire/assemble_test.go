package wire

import (
	"bytes"
	"errors"
	"testing"
)

// chunks cuts data into MetaChunks of at most n bytes.
func chunks(kind MetaKind, name string, data []byte, n int) []*MetaChunk {
	var cs []*MetaChunk
	for off := 0; ; off += n {
		end := min(off+n, len(data))
		cs = append(cs, &MetaChunk{Kind: kind, Name: name, Offset: uint64(off), Total: uint64(len(data)), Data: data[off:end], Last: end == len(data)})
		if end == len(data) {
			return cs
		}
	}
}

func TestMetaAssembler(t *testing.T) {
	t.Parallel()
	kallsyms := bytes.Repeat([]byte("ffffffff81000000 T _text\n"), 1000)
	format := []byte("name: sched_switch\nID: 316\n")
	var in []*MetaChunk
	in = append(in, chunks(MetaKallsyms, "", kallsyms, 4096)...)
	in = append(in, chunks(MetaFormat, "sched/sched_switch", format, 10)...)
	in = append(in, chunks(MetaSavedTgids, "", nil, 10)...)
	in = append(in, chunks(MetaFormat, "sched/sched_wakeup", format, MaxChunk)...)
	var a MetaAssembler
	var got []MetaItem
	for _, c := range in {
		// Through the wire, as the host gets them.
		var back MetaChunk
		if err := back.UnmarshalBinary(must(c.MarshalBinary())); err != nil {
			t.Fatal(err)
		}
		it, err := a.Add(&back)
		if err != nil {
			t.Fatal(err)
		}
		if it != nil {
			got = append(got, *it)
		}
	}
	if err := a.End(); err != nil {
		t.Fatal(err)
	}
	want := []MetaItem{
		{MetaKallsyms, "", kallsyms},
		{MetaFormat, "sched/sched_switch", format},
		{MetaSavedTgids, "", []byte{}},
		{MetaFormat, "sched/sched_wakeup", format},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d items, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].Kind != want[i].Kind || got[i].Name != want[i].Name || !bytes.Equal(got[i].Data, want[i].Data) {
			t.Errorf("item %d: got %v %q %d bytes, want %v %q %d bytes", i, got[i].Kind, got[i].Name, len(got[i].Data), want[i].Kind, want[i].Name, len(want[i].Data))
		}
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func TestMetaAssemblerRejects(t *testing.T) {
	t.Parallel()
	ab := []byte("abcdef")
	c := func(kind MetaKind, name string, off, total int, data string, last bool) *MetaChunk {
		return &MetaChunk{Kind: kind, Name: name, Offset: uint64(off), Total: uint64(total), Data: []byte(data), Last: last}
	}
	for _, tc := range []struct {
		name string
		a    MetaAssembler
		in   []*MetaChunk
		end  bool // the error comes from End
		want error
	}{
		{"first chunk not at 0", MetaAssembler{}, []*MetaChunk{c(MetaUname, "", 3, 6, "def", true)}, false, ErrMalformed},
		{"gap", MetaAssembler{}, []*MetaChunk{c(MetaUname, "", 0, 6, "ab", false), c(MetaUname, "", 3, 6, "def", true)}, false, ErrMalformed},
		{"overlap", MetaAssembler{}, []*MetaChunk{c(MetaUname, "", 0, 6, "abc", false), c(MetaUname, "", 2, 6, "cdef", true)}, false, ErrMalformed},
		{"size change", MetaAssembler{}, []*MetaChunk{c(MetaUname, "", 0, 6, "abc", false), c(MetaUname, "", 3, 7, "defg", true)}, false, ErrMalformed},
		{"interleaved", MetaAssembler{}, []*MetaChunk{c(MetaUname, "", 0, 6, "abc", false), c(MetaTraceClock, "", 0, 1, "x", true)}, false, ErrMalformed},
		{"name change", MetaAssembler{}, []*MetaChunk{c(MetaFormat, "a/b", 0, 6, "abc", false), c(MetaFormat, "a/c", 3, 6, "def", true)}, false, ErrMalformed},
		{"twice", MetaAssembler{}, []*MetaChunk{c(MetaFormat, "a/b", 0, 1, "x", true), c(MetaFormat, "a/b", 0, 1, "x", true)}, false, ErrMalformed},
		{"unknown kind", MetaAssembler{}, []*MetaChunk{c(200, "", 0, 1, "x", true)}, false, ErrMalformed},
		{"invalid chunk", MetaAssembler{}, []*MetaChunk{c(MetaFormat, "../x", 0, 1, "x", true)}, false, ErrMalformed},
		{"item over its cap", MetaAssembler{}, []*MetaChunk{c(MetaHeaderPage, "", 0, 64<<10+1, "x", false)}, false, ErrTooLarge},
		{"too many items", MetaAssembler{MaxItems: 1}, []*MetaChunk{c(MetaUname, "", 0, 1, "x", true), c(MetaTraceClock, "", 0, 1, "x", true)}, false, ErrTooLarge},
		{"over the total", MetaAssembler{MaxTotal: 8}, []*MetaChunk{c(MetaUname, "", 0, 6, "abcdef", true), c(MetaTraceClock, "", 0, 3, "x", false)}, false, ErrTooLarge},
		{"unfinished at end", MetaAssembler{}, []*MetaChunk{c(MetaUname, "", 0, 6, "abc", false)}, true, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := tc.a
			var err error
			for _, ch := range tc.in {
				if _, err = a.Add(ch); err != nil {
					break
				}
			}
			if tc.end {
				if err != nil {
					t.Fatalf("Add: %v", err)
				}
				err = a.End()
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			// The first error is final.
			if _, again := a.Add(c(MetaUname, "", 0, 6, string(ab), true)); !errors.Is(again, tc.want) {
				t.Errorf("after the error: %v", again)
			}
		})
	}
}
