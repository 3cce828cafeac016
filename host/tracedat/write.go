package tracedat

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/vtrace/vtrace/host/meta"
	"github.com/vtrace/vtrace/internal/sys"
	"github.com/vtrace/vtrace/proto/ringbuf"
	"github.com/vtrace/vtrace/proto/tracefs"
)

// CPUData is where one CPU's raw pages come from: a file (Path) or a
// reader of Size bytes (R). Only whole pages are written; the bytes of a
// trailing partial page are left out and reported in CPUResult.Dropped.
type CPUData struct {
	CPU  int
	Path string
	R    io.Reader
	Size int64
}

// CPUResult says where a CPU's pages went.
type CPUResult struct {
	CPU     int
	Offset  int64 // file offset of its data (page-aligned): its first page, or its chunk count when compressed
	Size    int64 // bytes of pages written, uncompressed
	Stored  int64 // bytes its data takes in the file: Size, or the compressed chunks
	Dropped int64 // trailing bytes short of a page, not written
	// BadPages counts the pages the page reader refused: each is an
	// empty page in the file (see BadPage).
	BadPages int64
}

// Result describes a written trace.dat.
type Result struct {
	Format      Format
	Compression Compression
	CPUs        []CPUResult // one per CPU slot, 0 to the highest CPU
	Size        int64       // file size
	PageSize    int64       // bytes per ring-buffer page, from the header_page
	// BadPages lists the first MaxBadListed pages written as empty pages
	// because the page reader refused them, in file order.
	BadPages []BadPage
}

// Write writes a trace.dat to w, which must be at offset 0 of its file:
// the header, then each CPU's whole pages, in the version and compression
// opts choose. Every page is checked with the page reader on its way
// (ringbuf.ParsePage with the layout of s's header_page): a page it
// refuses is written as an empty page and listed in Result.BadPages. A
// compressed version 7 file needs w to be an io.WriterAt as well (an
// *os.File): the sizes of the compressed data are filled in once written.
func Write(w io.Writer, s *meta.Set, cpus []CPUData, opts Options) (Result, error) {
	format, comp, err := opts.resolve()
	if err != nil {
		return Result{}, fmt.Errorf("write trace.dat: %w", err)
	}
	in, err := openInputs(s, cpus)
	if err != nil {
		return Result{}, fmt.Errorf("write trace.dat: %w", err)
	}
	defer in.close()
	if format == FormatV7 {
		return writeV7(w, s, in, opts, comp)
	}

	res := in.result()
	res.Format, res.Compression = FormatV6, CompressNone
	offsets, err := WriteHeader(w, s, in.sizes, opts)
	if err != nil {
		return Result{}, err
	}
	res.Size = offsets[0]
	buf := newCopyBuf(in.page)
	for cpu, n := range in.sizes {
		res.CPUs[cpu].Offset = offsets[cpu]
		res.CPUs[cpu].Stored = n
		if n == 0 {
			continue
		}
		if err := copyChecked(w, in.src[cpu], n, in.check(&res, cpu), buf); err != nil {
			return Result{}, fmt.Errorf("write trace.dat: copy CPU %d pages: %w", cpu, err)
		}
		res.Size += n
	}
	return res, nil
}

// inputs are the CPUs' page sources, slot by slot from CPU 0 to the
// highest: sizes[cpu] whole pages from src[cpu] (nil and 0 for a CPU not
// given), dropped[cpu] trailing bytes short of a page.
type inputs struct {
	layout  ringbuf.Layout // of the pages, from the Set's header_page
	page    int64
	sizes   []int64
	dropped []int64
	src     []io.Reader
	files   []*os.File
}

// openInputs checks the CPUs and opens their files.
func openInputs(s *meta.Set, cpus []CPUData) (*inputs, error) {
	if len(cpus) == 0 {
		return nil, errNoCPU
	}
	l, err := s.Layout()
	if err != nil {
		return nil, err
	}
	maxCPU := -1
	byCPU := map[int]CPUData{}
	for _, c := range cpus {
		if c.CPU < 0 || c.CPU > tracefs.MaxCPU {
			return nil, fmt.Errorf("CPU %d out of range [0, %d]", c.CPU, tracefs.MaxCPU)
		}
		if _, dup := byCPU[c.CPU]; dup {
			return nil, fmt.Errorf("CPU %d given twice", c.CPU)
		}
		byCPU[c.CPU] = c
		maxCPU = max(maxCPU, c.CPU)
	}
	in := &inputs{
		layout:  l,
		page:    int64(l.PageSize),
		sizes:   make([]int64, maxCPU+1),
		dropped: make([]int64, maxCPU+1),
		src:     make([]io.Reader, maxCPU+1),
		files:   make([]*os.File, maxCPU+1),
	}
	for cpu := range in.sizes {
		c, ok := byCPU[cpu]
		if !ok {
			continue
		}
		n := c.Size
		if c.Path != "" {
			f, err := os.Open(c.Path)
			if err != nil {
				in.close()
				return nil, err
			}
			in.files[cpu], in.src[cpu] = f, f
			fi, err := f.Stat()
			if err != nil {
				in.close()
				return nil, err
			}
			if !fi.Mode().IsRegular() {
				in.close()
				return nil, fmt.Errorf("%s is not a regular file", c.Path)
			}
			n = fi.Size()
		} else if c.R == nil {
			in.close()
			return nil, fmt.Errorf("CPU %d has neither a path nor a reader", cpu)
		} else {
			in.src[cpu] = c.R
		}
		in.sizes[cpu] = n / in.page * in.page
		in.dropped[cpu] = n - in.sizes[cpu]
	}
	return in, nil
}

func (in *inputs) close() {
	for _, f := range in.files {
		if f != nil {
			f.Close()
		}
	}
}

// result is a Result with each CPU's Size and Dropped filled in.
func (in *inputs) result() Result {
	res := Result{CPUs: make([]CPUResult, len(in.sizes)), PageSize: in.page}
	for cpu := range res.CPUs {
		res.CPUs[cpu] = CPUResult{CPU: cpu, Size: in.sizes[cpu], Dropped: in.dropped[cpu]}
	}
	return res
}

// WriteFile writes a trace.dat at path through a temporary file in the same
// directory, fsynced and renamed into place once complete, the directory
// fsynced after: a failed write, or a crash, leaves no partial trace.dat.
// It refuses to replace an existing file unless overwrite is set.
func WriteFile(path string, s *meta.Set, cpus []CPUData, opts Options, overwrite bool) (Result, error) {
	if !overwrite {
		if _, err := os.Lstat(path); err == nil {
			return Result{}, fmt.Errorf("write %s: %w (use --force to replace it)", path, os.ErrExist)
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return Result{}, fmt.Errorf("write trace.dat: %w", err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	res, err := Write(tmp, s, cpus, opts)
	if err != nil {
		return Result{}, err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return Result{}, fmt.Errorf("write trace.dat: %w", err)
	}
	// Without the fsync, a crash soon after the rename can leave the new
	// name on an empty or partial file.
	if err := tmp.Sync(); err != nil {
		return Result{}, fmt.Errorf("write trace.dat: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return Result{}, fmt.Errorf("write trace.dat: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		done = true
		return Result{}, fmt.Errorf("write trace.dat: %w", err)
	}
	done = true
	if err := sys.SyncDir(filepath.Dir(path)); err != nil {
		return Result{}, fmt.Errorf("write trace.dat: %w", err)
	}
	return res, nil
}

// CaptureCPUs lists the cpuN.raw files of a capture directory as CPUData.
func CaptureCPUs(dir string) ([]CPUData, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list capture: %w", err)
	}
	var cpus []CPUData
	for _, e := range ents {
		cpu, ok := tracefs.CPUFromName(e.Name(), "cpu", ".raw")
		if !ok || !e.Type().IsRegular() {
			continue
		}
		cpus = append(cpus, CPUData{CPU: cpu, Path: filepath.Join(dir, e.Name())})
	}
	if len(cpus) == 0 {
		return nil, fmt.Errorf("list capture: no cpuN.raw files in %s", dir)
	}
	return cpus, nil
}
