package guest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vtrace/vtrace/proto/wire"
)

// The header_page sent is the streamed directory's (an instance has its
// own, showing its sub-buffer size), the root's when the directory has
// none; header_event stays the root's.
func TestMetaHeaderPageOfStreamedDir(t *testing.T) {
	root := t.TempDir()
	inst := filepath.Join(root, "instances", "big")
	bare := filepath.Join(root, "instances", "bare")
	for path, text := range map[string]string{
		filepath.Join(root, "events", "header_page"):  "root page: size:4080\n",
		filepath.Join(root, "events", "header_event"): "root event\n",
		filepath.Join(inst, "events", "header_page"):  "instance page: size:16368\n",
		filepath.Join(inst, "events", "header_event"): "instance event\n",
	} {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(bare, 0o755)
	for _, c := range []struct{ inUse, page string }{{inst, "instance page"}, {bare, "root page"}, {root, "root page"}} {
		got := map[wire.MetaKind]string{}
		m := &metaSender{root: root, inUse: c.inUse, send: func(msg wire.Message) error {
			ch := msg.(*wire.MetaChunk)
			got[ch.Kind] += string(ch.Data)
			return nil
		}}
		m.item(wire.MetaHeaderPage)
		m.item(wire.MetaHeaderEvent)
		if !strings.HasPrefix(got[wire.MetaHeaderPage], c.page) || got[wire.MetaHeaderEvent] != "root event\n" || len(m.errs) > 0 {
			t.Errorf("streaming %s: header_page %q, header_event %q, errors %q; want %s and the root's event header",
				c.inUse, got[wire.MetaHeaderPage], got[wire.MetaHeaderEvent], m.errs, c.page)
		}
	}
}
