package wire

import (
	"errors"
	"reflect"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vtrace/vtrace/proto/tracefs"
)

// TestFieldTables: every message and record lists each of its struct's
// fields once, under a tag of its own.
func TestFieldTables(t *testing.T) {
	t.Parallel()
	sets := []fieldSet{new(Settings), new(Filter), new(CPUStats)}
	for ty := Type(0); ty < 255; ty++ {
		if m := New(ty); m != nil {
			sets = append(sets, m.(fieldSet))
		}
	}
	if len(sets) != 3+15 {
		t.Fatalf("%d field tables, want 18", len(sets))
	}
	for _, s := range sets {
		name := reflect.TypeOf(s).Elem().Name()
		fs := s.fields()
		if n := reflect.TypeOf(s).Elem().NumField(); len(fs) != n {
			t.Errorf("%s: %d fields in the table, %d in the struct", name, len(fs), n)
		}
		tags := map[byte]bool{}
		for _, f := range fs {
			if f.tag == 0 || tags[f.tag] {
				t.Errorf("%s: tag %d used twice or zero", name, f.tag)
			}
			tags[f.tag] = true
		}
	}
}

// TestID: ID reads the ID field of every message that has one (tag 1, as
// docs/protocol.md says), and 0 of Stats, which has none.
func TestID(t *testing.T) {
	t.Parallel()
	for ty := Type(0); ty < 255; ty++ {
		m := New(ty)
		if m == nil {
			continue
		}
		want := uint64(0)
		if f := reflect.ValueOf(m).Elem().FieldByName("ID"); f.IsValid() {
			want = 1000 + uint64(ty)
			f.SetUint(want)
		}
		if got := ID(m); got != want {
			t.Errorf("ID(%v) = %d, want %d", ty, got, want)
		}
	}
}

// TestLargeCPUNumbers: every CPU number the kernel can have crosses the
// wire, in a CPU list and in stats; the one above is refused both ways.
func TestLargeCPUNumbers(t *testing.T) {
	t.Parallel()
	for _, m := range []Message{
		&HelloReply{Version: 1, CPUs: []uint32{0, 5000, tracefs.MaxCPU}},
		&Stats{CPUs: []CPUStats{{CPU: 5000, Entries: 1}, {CPU: tracefs.MaxCPU}}},
	} {
		b, err := AppendMessage(nil, m)
		if err != nil {
			t.Fatalf("encode %v: %v", m.Type(), err)
		}
		var d Demux
		items := d.Feed(b)
		if len(items) != 1 || items[0].Frame == nil {
			t.Fatalf("%v: Feed = %+v, want one frame", m.Type(), items)
		}
		got, err := Decode(items[0].Frame)
		if err != nil {
			t.Fatalf("decode %v: %v", m.Type(), err)
		}
		if diff := cmp.Diff(m, got); diff != "" {
			t.Errorf("%v round trip (-want +got):\n%s", m.Type(), diff)
		}
	}
	for _, m := range []Message{
		&HelloReply{Version: 1, CPUs: []uint32{tracefs.MaxCPU + 1}},
		&Stats{CPUs: []CPUStats{{CPU: tracefs.MaxCPU + 1}}},
	} {
		if _, err := m.MarshalBinary(); !errors.Is(err, ErrMalformed) {
			t.Errorf("encode %v with CPU %d: %v, want ErrMalformed", m.Type(), tracefs.MaxCPU+1, err)
		}
	}
}

// TestFreeText: what FreeText gives, every message accepts.
func TestFreeText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"plain", "plain"},
		{"two\nlines\tand a tab", "two\nlines\tand a tab"},
		{"\x1b]0;title\x07", "?]0;title?"},
		{"bad \xff\xfe utf-8", "bad ? utf-8"},
		{"c1 \u0085 control", "c1 ? control"},
	} {
		got := FreeText(tc.in)
		if got != tc.want {
			t.Errorf("FreeText(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if _, err := (&Error{Message: got}).MarshalBinary(); err != nil {
			t.Errorf("Error{Message: FreeText(%q)}: %v", tc.in, err)
		}
	}
	long := FreeText(string(make([]byte, MaxString-1)) + "é")
	if len(long) != MaxString-1 {
		t.Errorf("FreeText of %d bytes ending in a 2-byte character: %d bytes, want %d", MaxString+1, len(long), MaxString-1)
	}
}
