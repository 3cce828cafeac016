package tracedat

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vtrace/vtrace/proto/ringbuf"
)

// TestWriteChecksPages: in every format, a page the page reader refuses
// (the first of a CPU, one in the middle of another) is written as an
// empty page and reported with its CPU, index and reason; every other
// page is written as it was.
func TestWriteChecksPages(t *testing.T) {
	s := fixtureSet(t)
	l := ringbuf.DefaultLayout()
	good := pages(3, 0, 9)
	cpu0 := bytes.Join([][]byte{good[:4096], garbage(1), good[4096:]}, nil) // pages 0 2 3 good
	cpu2 := bytes.Join([][]byte{garbage(2), good[:4096]}, nil)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "cpu0.raw"), cpu0, 0o644)
	os.WriteFile(filepath.Join(dir, "cpu2.raw"), cpu2, 0o644)
	cpus, err := CaptureCPUs(dir)
	if err != nil {
		t.Fatal(err)
	}
	// What the file must hold: each bad page emptied, stamped with the
	// last event of the good page before it (0 when there is none).
	empty := func(ts uint64) []byte {
		p := make([]byte, 4096)
		l.EmptyPage(p, ts)
		return p
	}
	first, _ := ringbuf.ParsePage(l, good[:4096], nil)
	want0 := bytes.Join([][]byte{good[:4096], empty(first.LastTS), good[4096:]}, nil)
	want2 := bytes.Join([][]byte{empty(0), good[:4096]}, nil)

	for _, o := range []Options{{Format: FormatV6}, {Format: FormatV7}, {Format: FormatV7, Compression: CompressZstd}} {
		name := o.Format.String() + "-" + string(o.Compression)
		dat := filepath.Join(dir, name+".dat")
		res, err := WriteFile(dat, s, cpus, o, false)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var where []BadPage
		for _, b := range res.BadPages {
			if !errors.Is(b.Err, ringbuf.ErrCorrupt) {
				t.Errorf("%s: %v: reason does not wrap ErrCorrupt", name, b)
			}
			where = append(where, BadPage{CPU: b.CPU, Index: b.Index})
		}
		if diff := cmp.Diff([]BadPage{{CPU: 0, Index: 1}, {CPU: 2, Index: 0}}, where); diff != "" {
			t.Errorf("%s: bad pages (-want +got):\n%s", name, diff)
		}
		if res.CPUs[0].BadPages != 1 || res.CPUs[1].BadPages != 0 || res.CPUs[2].BadPages != 1 {
			t.Errorf("%s: per-CPU bad pages %+v", name, res.CPUs)
		}
		b, _ := os.ReadFile(dat)
		got := map[int][]byte{}
		if o.Compression == CompressZstd {
			f, err := decodeV7(b)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			got[0], got[2] = f.cpuData[0], f.cpuData[2]
		} else {
			for _, cpu := range []int{0, 2} {
				c := res.CPUs[cpu]
				got[cpu] = b[c.Offset : c.Offset+c.Size]
			}
		}
		if !bytes.Equal(got[0], want0) || !bytes.Equal(got[2], want2) {
			t.Errorf("%s: CPU data differs from the input with its bad pages emptied", name)
		}
	}
}

// TestWriteBadPagesListBounded: a CPU of nothing but bad pages is
// counted whole, listed up to MaxBadListed.
func TestWriteBadPagesListBounded(t *testing.T) {
	s := fixtureSet(t)
	var raw []byte
	for i := range MaxBadListed + 50 {
		raw = append(raw, garbage(byte(i))...)
	}
	var buf bytes.Buffer
	res, err := Write(&buf, s, []CPUData{{CPU: 0, R: bytes.NewReader(raw), Size: int64(len(raw))}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.CPUs[0].BadPages != MaxBadListed+50 || len(res.BadPages) != MaxBadListed || res.BadPages[MaxBadListed-1].Index != MaxBadListed-1 {
		t.Errorf("counted %d bad pages, listed %d", res.CPUs[0].BadPages, len(res.BadPages))
	}
}
