package guest

// The ring buffer's sub-buffer size (buffer_subbuf_size_kb), and the page
// layout each recording streams with.

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/vtrace/vtrace/internal/sys"
	"github.com/vtrace/vtrace/proto/ringbuf"
	"github.com/vtrace/vtrace/proto/wire"
)

// subbufFile is the tracefs file of a buffer's sub-buffer size, in KiB. It
// came with Linux 6.8 (kernel/trace/trace.c, buffer_subbuf_size_write).
const subbufFile = "buffer_subbuf_size_kb"

// subbufSinceLinux is the kernel that added subbufFile.
const subbufSinceLinux = "6.8"

// maxSubbufPages is the kernel's largest sub-buffer in memory pages: it
// takes an order of 0 to 7 (buffer_subbuf_size_write, "limit between 1 and
// 128 system pages", Linux 6.8 to 6.12 at least).
const maxSubbufPages = 128

// subbufKiB is the sub-buffer size a recording with settings s asks for:
// the host's, else the agent's --subbuf-size; 0 leaves the kernel's.
func (a *Agent) subbufKiB(s wire.Settings) uint32 {
	if s.SubbufKiB != 0 {
		return s.SubbufKiB
	}
	return a.cfg.SubbufKiB
}

// checkSubbuf checks a sub-buffer size of kib KiB against the guest
// kernel and the agent's pipes before anything is changed.
func (a *Agent) checkSubbuf(kib uint32) error {
	if kib == 0 {
		return nil
	}
	if !exists(filepath.Join(a.root, subbufFile)) {
		return settingsErrorf("sub-buffer size %d KiB: %s", kib, noSubbufFile())
	}
	if err := checkSubbufKiB(kib, sys.PageSize()); err != nil {
		return &settingsError{err}
	}
	if pipe := a.smallestPipe(); pipe > 0 && int(kib)<<10 > pipe {
		return settingsErrorf("sub-buffer size %d KiB: larger than the agent's pipe of %d KiB per CPU (--pipe-size), which must hold a whole sub-buffer",
			kib, pipe>>10)
	}
	return nil
}

// noSubbufFile says that the kernel cannot change the sub-buffer size, and
// which kernel can.
func noSubbufFile() string {
	rel := "an older kernel"
	if r, err := sys.Release(); err == nil {
		rel = "Linux " + r
	}
	return fmt.Sprintf("the kernel has no %s (it came with Linux %s; this guest runs %s): leave the sub-buffer size unset, or boot Linux %s or later",
		subbufFile, subbufSinceLinux, rel, subbufSinceLinux)
}

// checkSubbufKiB checks kib against what the kernel takes with memory
// pages of page bytes: a power of two from one page to maxSubbufPages.
// (The kernel would round another size up to a power of two pages; the
// agent refuses it so that the size asked is the size recorded.)
func checkSubbufKiB(kib uint32, page int) error {
	n := int64(kib) << 10
	max := int64(page) * maxSubbufPages
	if n < int64(page) || n > max || kib&(kib-1) != 0 {
		return fmt.Errorf("sub-buffer size %d KiB: want a power of two from %d KiB to %d KiB (1 to %d pages of %d bytes)",
			kib, page>>10, max>>10, maxSubbufPages, page)
	}
	return nil
}

// smallestPipe is the capacity of the smallest CPU pipe, in bytes; 0
// without workers.
func (a *Agent) smallestPipe() int {
	n := 0
	for _, w := range a.allWorkers() {
		if n == 0 || w.pipeCap < n {
			n = w.pipeCap
		}
	}
	return n
}

// setSubbuf sets dir's sub-buffer size to kib KiB and returns the value it
// had, to put back. The kernel empties the buffer when the size changes, so
// a size already in place is not written again.
func setSubbuf(dir string, kib uint32) (old string, err error) {
	p := filepath.Join(dir, subbufFile)
	b, err := readSmall(p, 64)
	if err != nil { // checkSubbuf found the file
		return "", settingsErrorf("sub-buffer size %d KiB: %w", kib, err)
	}
	old = strings.TrimSpace(string(b))
	want := strconv.FormatUint(uint64(kib), 10)
	if old == want {
		return old, nil
	}
	if err := writeFile(p, want); err != nil {
		why := ""
		if errors.Is(err, sys.EPERM) { // ftrace says EINVAL to a size it cannot take
			why = ": the kernel refuses writes to the file (a security policy): leave the sub-buffer size unset"
		}
		return "", settingsErrorf("sub-buffer size %d KiB: %w%s", kib, err, why)
	}
	return old, nil
}

// layoutOf reads the page layout of the tracefs directory dir (its
// events/header_page, else the root's) and checks that every CPU pipe
// holds a whole page of it.
func (a *Agent) layoutOf(dir string) (ringbuf.Layout, error) {
	l, err := ringbuf.LayoutFromTracefs(dir)
	if err != nil {
		return l, fmt.Errorf("read the ring-buffer page layout of %s: %w", dir, err)
	}
	if pipe := a.smallestPipe(); pipe > 0 && l.PageSize > pipe {
		return l, fmt.Errorf("ring-buffer pages of %d bytes in %s: larger than the agent's pipe of %d bytes per CPU (--pipe-size)", l.PageSize, dir, pipe)
	}
	return l, nil
}

// pageSizeNow is the page size of the directory streamed now, or that the
// next start streams with settings that change nothing.
func (a *Agent) pageSizeNow() int {
	if a.rec != nil {
		return a.rec.layout.PageSize
	}
	if l, err := ringbuf.LayoutFromTracefs(a.tracefs); err == nil {
		return l.PageSize
	}
	return a.layout.PageSize
}

// pageSizeForStdout makes the -o records of the next recording carry pages
// of page bytes.
func (a *Agent) pageSizeForStdout(page int) {
	if a.stdout != nil {
		a.stdout.setPage(page)
	}
}
