package guest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/vtrace/vtrace/internal/sys"
	"github.com/vtrace/vtrace/proto/clip"
	"github.com/vtrace/vtrace/proto/wire"
)

// Per-item caps, as the host accepts them (docs/protocol.md, Bounds).
const (
	maxHeaderItem = 64 << 10
	maxLineItem   = wire.MaxString
	maxBigItem    = 16 << 20 // printk_formats, saved_cmdlines, saved_tgids
	maxKallsyms   = 64 << 20
)

// Paths outside tracefs, variables for the tests' sake.
var (
	kallsymsPath     = "/proc/kallsyms"
	kptrRestrictPath = "/proc/sys/kernel/kptr_restrict"
)

// metaSender answers one MetaRequest: each item as MetaChunks, in order,
// then MetaEnd.
type metaSender struct {
	id     uint64
	send   func(wire.Message) error
	items  uint64
	errs   []string
	buf    []byte // one chunk, for streamed files
	root   string // tracefs root: header_event, formats, printk_formats, saved_*
	inUse  string // the tracefs directory streamed: header_page, trace_clock
	failed error  // sending failed: the answer is cut short
}

// sendMeta streams the items of req. It returns an error only when the
// answer could not be sent (the host stopped reading).
func (a *Agent) sendMeta(req *wire.MetaRequest, send func(wire.Message) error) error {
	m := &metaSender{id: req.ID, send: send, root: a.root, inUse: a.dirInUse()}
	seen := map[wire.MetaKind]bool{}
	for _, k := range req.Items {
		if seen[k] {
			continue
		}
		seen[k] = true
		m.item(k)
		if m.failed != nil {
			return m.failed
		}
	}
	if len(m.errs) > wire.MaxErrors {
		m.errs = append(m.errs[:wire.MaxErrors-1], fmt.Sprintf("and %d more errors", len(m.errs)-wire.MaxErrors+1))
	}
	return send(&wire.MetaEnd{ID: req.ID, Items: m.items, Errors: m.errs})
}

func (m *metaSender) errorf(format string, args ...any) {
	m.errs = append(m.errs, wire.FreeText(fmt.Sprintf(format, args...)))
}

func (m *metaSender) item(k wire.MetaKind) {
	switch k {
	case wire.MetaHeaderPage:
		// The page layout is the streamed buffer's: an instance has its
		// own sub-buffer size (buffer_subbuf_size_kb), and its own
		// events/header_page shows it. A kernel without one per instance
		// has only the root's.
		p := filepath.Join(m.inUse, "events", "header_page")
		if !exists(p) {
			p = filepath.Join(m.root, "events", "header_page")
		}
		m.small(k, "", p, maxHeaderItem)
	case wire.MetaHeaderEvent:
		m.small(k, "", filepath.Join(m.root, "events", "header_event"), maxHeaderItem)
	case wire.MetaFormat:
		m.formats()
	case wire.MetaKallsyms:
		m.kallsyms()
	case wire.MetaPrintkFormats:
		m.stream(k, filepath.Join(m.root, "printk_formats"), maxBigItem)
	case wire.MetaSavedCmdlines:
		m.stream(k, filepath.Join(m.root, "saved_cmdlines"), maxBigItem)
	case wire.MetaSavedTgids:
		m.stream(k, filepath.Join(m.root, "saved_tgids"), maxBigItem)
	case wire.MetaTraceClock:
		m.small(k, "", filepath.Join(m.inUse, "trace_clock"), maxLineItem)
	case wire.MetaUname:
		u, err := sys.Uname()
		if err != nil {
			m.errorf("%v: %v", k, err)
			return
		}
		m.bytes(k, "", []byte(u+"\n"))
	default:
		m.errorf("%v: unknown item", k)
	}
}

// formats sends events/SYSTEM/EVENT/format for every event, ftrace's own
// included, sorted by name.
func (m *metaSender) formats() {
	files, err := filepath.Glob(filepath.Join(m.root, "events", "*", "*", "format"))
	if err != nil || len(files) == 0 {
		m.errorf("format: no events/*/*/format under %s", m.root)
		return
	}
	sort.Strings(files)
	for _, f := range files {
		event := filepath.Base(filepath.Dir(f))
		system := filepath.Base(filepath.Dir(filepath.Dir(f)))
		if !wire.ValidName(system) || !wire.ValidName(event) {
			m.errorf("format %s/%s: name not in [A-Za-z0-9_.-]", clip.Text(system, 64), clip.Text(event, 64))
			continue
		}
		m.small(wire.MetaFormat, system+"/"+event, f, maxHeaderItem)
		if m.failed != nil {
			return
		}
	}
}

// small sends a file read whole (at most max bytes).
func (m *metaSender) small(k wire.MetaKind, name, path string, max int) {
	b, err := readSmall(path, max)
	if err != nil {
		m.errorf("%v %s: %v", k, name, err)
		return
	}
	m.bytes(k, name, b)
}

// bytes sends one item from memory, in chunks.
func (m *metaSender) bytes(k wire.MetaKind, name string, b []byte) {
	total := uint64(len(b))
	off := 0
	for {
		n := min(len(b)-off, wire.MaxChunk)
		c := &wire.MetaChunk{ID: m.id, Kind: k, Name: name, Offset: uint64(off), Total: total,
			Data: b[off : off+n], Last: off+n == len(b)}
		if err := m.send(c); err != nil {
			m.failed = err
			return
		}
		off += n
		if c.Last {
			m.items++
			return
		}
	}
}

// stream sends a large file without holding it in the agent's memory: it
// is copied first into a memfd (procfs and tracefs files have no size, and
// /proc/kallsyms changes as BPF programs come and go, so the size must be
// that of one read), then sent from there chunk by chunk.
func (m *metaSender) stream(k wire.MetaKind, path string, max int) {
	spool, total := m.spool(k, path, max)
	if spool == nil {
		return
	}
	defer spool.Close()
	m.sendSpool(k, spool, total)
}

// spool copies path (at most max bytes) into a memfd and returns it with
// the size copied; nil when that failed (the error is noted).
func (m *metaSender) spool(k wire.MetaKind, path string, max int) (*os.File, int64) {
	src, err := os.Open(path)
	if err != nil {
		m.errorf("%v: %v", k, err)
		return nil, 0
	}
	defer src.Close()
	spool, err := sys.MemFile("vtrace-" + k.String())
	if err != nil {
		m.errorf("%v: %v", k, err)
		return nil, 0
	}
	total, err := io.Copy(spool, io.LimitReader(src, int64(max)+1))
	switch {
	case err != nil:
		spool.Close()
		m.errorf("%v: read %s: %v", k, path, err)
		return nil, 0
	case total > int64(max):
		spool.Close()
		m.errorf("%v: %s over %d bytes", k, path, max)
		return nil, 0
	}
	return spool, total
}

// sendSpool sends the total bytes of spool as item k, chunk by chunk.
func (m *metaSender) sendSpool(k wire.MetaKind, spool *os.File, total int64) {
	if m.buf == nil {
		m.buf = make([]byte, wire.MaxChunk)
	}
	for off := int64(0); ; {
		n, err := spool.ReadAt(m.buf[:min(total-off, int64(len(m.buf)))], off)
		if n == 0 && off < total {
			err = io.ErrUnexpectedEOF
		}
		if err != nil && !errors.Is(err, io.EOF) {
			m.failed = fmt.Errorf("read back %v: %w", k, err) // the item is cut: the answer cannot go on
			return
		}
		c := &wire.MetaChunk{ID: m.id, Kind: k, Offset: uint64(off), Total: uint64(total),
			Data: m.buf[:n], Last: off+int64(n) == total}
		if err := m.send(c); err != nil {
			m.failed = err
			return
		}
		off += int64(n)
		if c.Last {
			m.items++
			return
		}
	}
}

// kallsyms sends /proc/kallsyms with its addresses: when kptr_restrict
// hides them (all zeros), it is lowered to 0 while the file is copied into
// the spool, and put back before a byte goes to the host, so that the
// addresses stay visible in the guest only for the copy, not for as long
// as a slow host takes to read them.
func (m *metaSender) kallsyms() {
	spool, total := m.spoolKallsyms()
	if spool == nil {
		return
	}
	defer spool.Close()
	m.sendSpool(wire.MetaKallsyms, spool, total)
}

func (m *metaSender) spoolKallsyms() (*os.File, int64) {
	k := wire.MetaKallsyms
	hidden, err := kallsymsHidden()
	if err != nil {
		m.errorf("%v: %v", k, err)
		return nil, 0
	}
	if hidden {
		restore, err := lowerKptrRestrict()
		if err != nil {
			m.errorf("%v: addresses hidden, sent as is: %v", k, err)
		} else {
			defer restore()
			if hidden, _ = kallsymsHidden(); hidden {
				m.errorf("%v: addresses hidden even with kptr_restrict 0 (the agent lacks CAP_SYSLOG?), sent as is", k)
			}
		}
	}
	return m.spool(k, kallsymsPath, maxKallsyms)
}

// kallsymsHidden says whether /proc/kallsyms shows zero addresses.
func kallsymsHidden() (bool, error) {
	f, err := os.Open(kallsymsPath)
	if err != nil {
		return false, err
	}
	defer f.Close()
	hidden, err := addressesHidden(f)
	if err != nil {
		return false, fmt.Errorf("read %s: %w", kallsymsPath, err)
	}
	return hidden, nil
}

// hiddenProbeLines bounds how far addressesHidden looks.
const hiddenProbeLines = 4096

// addressesHidden reports whether a kallsyms text shows only zero
// addresses. The first lines may be zero for real (x86-64 per-CPU symbols
// such as fixed_percpu_data sit at 0), so one non-zero address among the
// first lines is enough to show the addresses are visible.
func addressesHidden(r io.Reader) (bool, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 512), 4096)
	for n := 0; n < hiddenProbeLines && sc.Scan(); n++ {
		addr, _, _ := strings.Cut(sc.Text(), " ")
		if strings.Trim(addr, "0") != "" {
			return false, nil
		}
	}
	return true, sc.Err()
}

// lowerKptrRestrict sets kptr_restrict to 0 and returns what puts the old
// value back.
func lowerKptrRestrict() (func(), error) {
	old, err := os.ReadFile(kptrRestrictPath)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", kptrRestrictPath, err)
	}
	old = bytes.TrimSpace(old)
	if string(old) == "0" {
		return func() {}, nil
	}
	if err := writeFile(kptrRestrictPath, "0"); err != nil {
		return nil, fmt.Errorf("lower kptr_restrict from %s: %w", old, err)
	}
	return func() { writeFile(kptrRestrictPath, string(old)) }, nil
}

// writeFile writes s to an existing file in one write(2), without O_TRUNC
// or O_CREAT (tracefs gives meaning to both).
func writeFile(path, s string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.Write([]byte(s))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
