package ringbuf

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func FuzzParsePage(f *testing.F) {
	if raw, err := os.ReadFile(filepath.Join("testdata", "sched-irq.pages")); err == nil {
		for off := 0; off+4096 <= len(raw) && off < 4*4096; off += 4096 {
			f.Add(raw[off : off+4096])
		}
	}
	f.Add(make([]byte, 4096))
	f.Fuzz(func(t *testing.T, page []byte) {
		l := DefaultLayout()
		ps, err := ParsePage(l, page, func(r Record) error {
			_ = r.Type()
			return nil
		})
		if err == nil && ps.DataBytes > l.PageSize-l.DataOffset {
			t.Fatalf("accepted commit %d beyond the page", ps.DataBytes)
		}
		// Scan over the same bytes must agree with ParsePage on whole pages.
		s, serr := Scan(l, bytes.NewReader(page), nil)
		if err == nil && len(page) == l.PageSize && (serr != nil || s.Events != int64(ps.Events)) {
			t.Fatalf("Scan %+v %v disagrees with ParsePage %+v", s, serr, ps)
		}
		// ScanSkipping counts a page ParsePage refuses as corrupt, and
		// nothing of it.
		k, kerr := ScanSkipping(l, bytes.NewReader(page), nil, nil)
		if len(page) == l.PageSize {
			if kerr != nil || (err == nil) != (k.CorruptPages == 0) || (err != nil && k.Events != 0) {
				t.Fatalf("ScanSkipping %+v %v disagrees with ParsePage %+v %v", k, kerr, ps, err)
			}
		}
	})
}

func FuzzParseHeaderPage(f *testing.F) {
	f.Add([]byte(realHeaderPage))
	f.Fuzz(func(t *testing.T, text []byte) {
		l, err := ParseHeaderPage(text)
		if err == nil {
			if verr := l.Validate(); verr != nil {
				t.Fatalf("accepted invalid layout %+v: %v", l, verr)
			}
		}
	})
}
