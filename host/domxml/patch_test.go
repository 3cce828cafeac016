package domxml

import (
	"bytes"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vtrace/vtrace/proto/channel"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// goldenCases: each testdata/NAME.xml is patched with spec into
// NAME.patched.golden, which Unpatch turns into NAME.unpatched.golden.
var goldenCases = []struct {
	name string
	spec Spec
}{
	{"plain", Spec{Dir: "/var/lib/vtrace/plain"}},
	{"guest-agent", Spec{Dir: "/var/lib/vtrace/debian12"}},
	{"qemu-ns", Spec{Dir: "/var/lib/vtrace/tiny"}},
	{"more-ports", Spec{Dir: "/var/lib/vtrace/shrunk"}},
	{"fewer-ports", Spec{Dir: "/var/lib/vtrace/grown"}},
	{"pty-console", Spec{Dir: "/srv/trace dir/it's"}},
	{"no-devices", Spec{Dir: "/var/lib/vtrace/bare", CPUs: 3}},
	{"crlf-devices-empty", Spec{Dir: "/var/lib/vtrace/crlf"}},
	// 64 vCPUs (8 online at boot) beside a guest agent on a controller
	// of the user's: a controller of ours takes what does not fit.
	{"many-vcpus", Spec{Dir: "/var/lib/vtrace/bigvm"}},
	// 288 vCPUs (q35's most), no controller: one of ours with 290 ports.
	{"huge-vcpus", Spec{Dir: "/var/lib/vtrace/huge"}},
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (go test -update writes it): %v", err)
	}
	if d := Diff("want", "got", want, got); d != "" {
		t.Errorf("%s differs (go test -update rewrites it):\n%s", path, d)
	}
}

func TestPatchGolden(t *testing.T) {
	for _, c := range goldenCases {
		t.Run(c.name, func(t *testing.T) {
			in, err := os.ReadFile(filepath.Join("testdata", c.name+".xml"))
			if err != nil {
				t.Fatal(err)
			}
			out, changed, err := Patch(in, c.spec)
			if err != nil {
				t.Fatal(err)
			}
			if !changed {
				t.Error("Patch reported no change")
			}
			golden(t, filepath.Join("testdata", c.name+".patched.golden"), out)
			checkPatched(t, in, out, c.spec)

			un, changed, err := Unpatch(out)
			if err != nil || !changed {
				t.Fatalf("Unpatch: changed %v, %v", changed, err)
			}
			golden(t, filepath.Join("testdata", c.name+".unpatched.golden"), un)
			info, err := Inspect(un)
			if err != nil || len(info.Channels) != 0 {
				t.Errorf("after Unpatch: channels %+v, %v", info.Channels, err)
			}
			if again, changed, err := Unpatch(un); err != nil || changed || !bytes.Equal(again, un) {
				t.Errorf("second Unpatch: changed %v, %v", changed, err)
			}
		})
	}
}

// checkPatched verifies out against spec: idempotence, the channels and
// their ports, and that what is outside <devices> did not move.
func checkPatched(t *testing.T, in, out []byte, spec Spec) {
	t.Helper()
	again, changed, err := Patch(out, spec)
	if err != nil || changed || !bytes.Equal(again, out) {
		t.Errorf("second Patch: changed %v, err %v, diff:\n%s", changed, err, Diff("first", "second", out, again))
	}
	info, err := Inspect(out)
	if err != nil {
		t.Fatal(err)
	}
	cpus := spec.CPUs
	if cpus == 0 {
		cpus = info.CPUs
	}
	want := channel.Names(cpus)
	if got := info.ChannelNames(); strings.Join(sortedCopy(got), ",") != strings.Join(sortedCopy(want), ",") {
		t.Errorf("channels %q, want %q", got, want)
	}
	ports := map[addr]string{}
	root, _ := parse(out)
	root.walk(func(n *node) {
		if a, ok := serialAddr(n); ok && n.name == "address" {
			if prev, dup := ports[a]; dup {
				t.Errorf("controller %d port %d used twice (%s)", a.ctl, a.port, prev)
			}
			ports[a] = n.parent.name
		}
	})
	for _, ch := range info.Channels {
		if ch.Type != "pipe" || ch.Path != filepath.Join(spec.Dir, ch.Name) || ch.Port < 1 {
			t.Errorf("channel %+v is not a pipe in %s on a port >= 1", ch, spec.Dir)
		}
	}
	inInfo, _ := Inspect(in)
	if info.Name != inInfo.Name || info.UUID != inInfo.UUID {
		t.Errorf("name/uuid changed: %q %q -> %q %q", inInfo.Name, inInfo.UUID, info.Name, info.UUID)
	}
	// Everything before <devices> is untouched.
	if i := bytes.Index(in, []byte("<devices")); i > 0 && !bytes.Equal(in[:i], out[:i]) {
		t.Error("the text before <devices> changed")
	}
	if i := bytes.Index(in, []byte("</devices>")); i > 0 {
		tail := in[i:]
		if !bytes.HasSuffix(out, tail) {
			t.Errorf("the text from </devices> on changed")
		}
	}
}

func sortedCopy(s []string) []string {
	c := append([]string(nil), s...)
	for i := 1; i < len(c); i++ {
		for j := i; j > 0 && c[j] < c[j-1]; j-- {
			c[j], c[j-1] = c[j-1], c[j]
		}
	}
	return c
}

func TestPatchCPUsChange(t *testing.T) {
	in, err := os.ReadFile("testdata/guest-agent.xml")
	if err != nil {
		t.Fatal(err)
	}
	spec := Spec{Dir: "/d"}
	var prev []byte = in
	for _, cpus := range []int{4, 1, 6, 0, 2} {
		spec.CPUs = cpus
		out, _, err := Patch(prev, spec)
		if err != nil {
			t.Fatalf("cpus %d: %v", cpus, err)
		}
		checkPatched(t, in, out, spec)
		if !bytes.Contains(out, []byte("org.qemu.guest_agent.0'/>\n      <address type='virtio-serial' controller='0' bus='0' port='1'/>")) {
			t.Errorf("cpus %d: the guest agent channel moved or changed", cpus)
		}
		prev = out
	}
	// Back to the start after Unpatch: our channels gone, the rest intact.
	un, _, err := Unpatch(prev)
	if err != nil {
		t.Fatal(err)
	}
	if d := Diff("original", "unpatched", in, un); d != "" {
		t.Errorf("Unpatch did not restore the document:\n%s", d)
	}
}

// controllersOf lists the virtio-serial controllers of doc as
// "index:ports[:ours]".
func controllersOf(t *testing.T, doc []byte) []string {
	t.Helper()
	root, err := parse(doc)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range root.child("devices").all("controller") {
		if c.attrs["type"] != "virtio-serial" {
			continue
		}
		s := c.attrs["index"] + ":" + c.attrs["ports"]
		if isOurController(c) {
			s += ":ours"
		}
		out = append(out, s)
	}
	return out
}

// ctlRun is n controllers of ours of 100 ports, the last of last ports.
func ctlRun(n, last int) []string {
	var out []string
	for i := range n - 1 {
		out = append(out, fmt.Sprintf("%d:100:ours", i))
	}
	return append(out, fmt.Sprintf("%d:%d:ours", n-1, last))
}

// TestPatchManyVCPUs: vCPU counts past one controller's ports fit, on a
// domain with a controller of the user's and on one without; the
// channels that were there keep their addresses as the count grows and
// shrinks; a controller of ours that nothing uses any more goes.
func TestPatchManyVCPUs(t *testing.T) {
	agent, _ := os.ReadFile("testdata/guest-agent.xml")
	plain, _ := os.ReadFile("testdata/plain.xml")
	for _, c := range []struct {
		name string
		in   []byte
		cpus []int
		ctls [][]string // per step
	}{
		{"user's controller", agent, []int{40, 64, 288, 2}, [][]string{
			{"0:", "1::ours"}, {"0:", "1:38:ours"}, {"0:", "1:100:ours", "2:100:ours", "3:64:ours"}, {"0:"}}},
		{"no controller", plain, []int{40, 64, 600, 64, 8191}, [][]string{
			{"0:42:ours"}, {"0:66:ours"}, {"0:100:ours", "1:100:ours", "2:100:ours", "3:100:ours", "4:100:ours", "5:100:ours", "6::ours"},
			{"0:100:ours"}, ctlRun(83, 75)}},
	} {
		prev := c.in
		for i, cpus := range c.cpus {
			spec := Spec{Dir: "/d", CPUs: cpus}
			out, _, err := Patch(prev, spec)
			if err != nil {
				t.Fatalf("%s, %d vCPUs: %v", c.name, cpus, err)
			}
			checkPatched(t, c.in, out, spec)
			if got := controllersOf(t, out); strings.Join(got, " ") != strings.Join(c.ctls[i], " ") {
				t.Errorf("%s, %d vCPUs: controllers %v, want %v", c.name, cpus, got, c.ctls[i])
			}
			before, _ := Inspect(prev)
			after, _ := Inspect(out)
			at := map[string]Channel{}
			for _, ch := range after.Channels {
				at[ch.Name] = ch
			}
			for _, ch := range before.Channels {
				if now, ok := at[ch.Name]; ok && (now.Controller != ch.Controller || now.Port != ch.Port) {
					t.Errorf("%s, %d vCPUs: %s moved from %d:%d to %d:%d", c.name, cpus, ch.Name, ch.Controller, ch.Port, now.Controller, now.Port)
				}
			}
			if !bytes.Equal(c.in, agent) || bytes.Contains(out, []byte("org.qemu.guest_agent.0'/>\n      <address type='virtio-serial' controller='0' bus='0' port='1'/>")) {
				prev = out
				continue
			}
			t.Errorf("%s, %d vCPUs: the guest agent channel moved or changed", c.name, cpus)
			prev = out
		}
		un, _, err := Unpatch(prev)
		if err != nil {
			t.Fatal(err)
		}
		if d := Diff("original", "unpatched", c.in, un); d != "" {
			t.Errorf("%s: Unpatch did not restore the document:\n%s", c.name, d)
		}
	}
}

func TestPatchErrors(t *testing.T) {
	for _, c := range []struct {
		doc  string
		spec Spec
		want string
	}{
		{"<domain><vcpu>2</vcpu>", Spec{Dir: "/d"}, "parse"},
		{"<vm><vcpu>2</vcpu></vm>", Spec{Dir: "/d"}, "not <domain>"},
		{"<domain/>", Spec{Dir: "/d"}, "no <vcpu>"},
		{"<domain><vcpu>two</vcpu></domain>", Spec{Dir: "/d"}, "<vcpu> count"},
		{"<domain><vcpu current='x'>2</vcpu></domain>", Spec{Dir: "/d"}, "current"},
		{"<domain><vcpu current='3'>2</vcpu></domain>", Spec{Dir: "/d"}, "current"},
		{"<domain><vcpu>2</vcpu></domain>", Spec{Dir: "rel"}, "absolute"},
		{"<domain><vcpu>2</vcpu></domain><x/>", Spec{Dir: "/d"}, "root"},
	} {
		_, _, err := Patch([]byte(c.doc), c.spec)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Patch(%q) = %v, want an error with %q", c.doc, err, c.want)
		}
	}
}

func TestInspect(t *testing.T) {
	in, _ := os.ReadFile("testdata/more-ports.xml")
	info, err := Inspect(in)
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != "shrunk" || info.UUID != "7a1e4f8e-2a0c-4a3a-9c1c-1f9e7b7d5e02" || info.CPUs != 2 || len(info.Channels) != 5 {
		t.Errorf("Inspect = %+v", info)
	}
	if c := info.Channels[1]; c != (Channel{Name: "trace-path-cpu0", Type: "pipe", Path: "/tmp/virtio-trace/trace-path-cpu0", Port: 2}) {
		t.Errorf("channel 1 = %+v", c)
	}
	in, _ = os.ReadFile("testdata/guest-agent.xml")
	if info, _ := Inspect(in); info.CPUs != 4 {
		t.Errorf("CPUs of <vcpu current='2'>4</vcpu> = %d, want the maximum, 4", info.CPUs)
	}
}

func TestFIFODir(t *testing.T) {
	ch := func(name, p string) Channel { return Channel{Name: name, Type: "pipe", Path: p, Port: -1} }
	for _, c := range []struct {
		chans []Channel
		dir   string
	}{
		{[]Channel{ch("agent-ctl-path", "/run/a/agent-ctl-path"), ch("trace-path-cpu0", "/run/a/trace-path-cpu0")}, "/run/a"},
		{[]Channel{ch("agent-ctl-path", "/run/a//b/../agent-ctl-path")}, "/run/a"},
		{nil, ""},
		{[]Channel{ch("agent-ctl-path", "/run/a/agent-ctl-path"), ch("trace-path-cpu0", "/run/b/trace-path-cpu0")}, ""},
		{[]Channel{ch("agent-ctl-path", "/run/a/other")}, ""},
		{[]Channel{ch("agent-ctl-path", "run/a/agent-ctl-path")}, ""},
		{[]Channel{ch("agent-ctl-path", "")}, ""},
	} {
		dir, ok := Info{Channels: c.chans}.FIFODir()
		if dir != c.dir || ok != (c.dir != "") {
			t.Errorf("FIFODir of %+v = %q, %v; want %q", c.chans, dir, ok, c.dir)
		}
	}
	in, _ := os.ReadFile("testdata/more-ports.xml")
	if info, err := Inspect(in); err != nil {
		t.Fatal(err)
	} else if dir, ok := info.FIFODir(); ok {
		// Its channels name two directories: no answer rather than a guess.
		t.Errorf("FIFODir of more-ports.xml = %q, want none", dir)
	}
}

func TestDiff(t *testing.T) {
	a := []byte("a\nb\nc\nd\ne\nf\ng\nh\ni\n")
	b := []byte("a\nb\nc\nX\nd\ne\nf\ng\nh\n")
	want := "--- old\n+++ new\n@@ -2,4 +2,5 @@\n b\n c\n+X\n d\n e\n@@ -7,3 +8,2 @@\n g\n h\n-i\n"
	if got := Diff("old", "new", a, b); got != want {
		t.Errorf("Diff =\n%s\nwant\n%s", got, want)
	}
	if got := Diff("a", "b", a, a); got != "" {
		t.Errorf("Diff of equal inputs = %q", got)
	}
}

// wellFormed reports whether doc parses as XML with encoding/xml.
func wellFormed(doc []byte) error {
	d := xml.NewDecoder(bytes.NewReader(doc))
	for {
		_, err := d.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func FuzzPatch(f *testing.F) {
	for _, c := range goldenCases {
		in, err := os.ReadFile(filepath.Join("testdata", c.name+".xml"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(in, uint8(c.spec.CPUs))
		if out, _, err := Patch(in, c.spec); err == nil {
			f.Add(out, uint8(1))
		}
	}
	f.Add([]byte("<domain><vcpu>1</vcpu><devices><channel><target type='virtio' name='agent-ctl-path'/></channel></devices></domain>"), uint8(0))
	f.Fuzz(func(t *testing.T, doc []byte, cpus uint8) {
		// Up to 765 vCPUs: more than one controller holds.
		spec := Spec{Dir: "/var/lib/vtrace/f", CPUs: int(cpus) * 3}
		out, changed, err := Patch(doc, spec)
		if err != nil {
			return
		}
		if !changed && !bytes.Equal(out, doc) {
			t.Fatal("unchanged output differs from the input")
		}
		if err := wellFormed(out); err != nil {
			t.Fatalf("Patch output is not well-formed: %v\n%s", err, out)
		}
		again, changed, err := Patch(out, spec)
		if err != nil || changed || !bytes.Equal(again, out) {
			t.Fatalf("Patch is not idempotent: changed %v, %v\n%s", changed, err, Diff("first", "second", out, again))
		}
		un, _, err := Unpatch(out)
		if err != nil {
			t.Fatalf("Unpatch of Patch output: %v", err)
		}
		if err := wellFormed(un); err != nil {
			t.Fatalf("Unpatch output is not well-formed: %v\n%s", err, un)
		}
		info, err := Inspect(un)
		if err != nil || len(info.Channels) != 0 {
			t.Fatalf("channels left after Unpatch: %+v, %v", info.Channels, err)
		}
	})
}

func TestQemuArgs(t *testing.T) {
	got := FormatQemuArgs(QemuArgs("/tmp/virtio trace,x", 2))
	want := `  -device virtio-serial-pci,id=vtrace-serial0 \
  -chardev 'pipe,id=vtrace0,path=/tmp/virtio trace,,x/agent-ctl-path' \
  -device virtserialport,bus=vtrace-serial0.0,nr=1,chardev=vtrace0,id=vtrace0-port,name=agent-ctl-path \
  -chardev 'pipe,id=vtrace1,path=/tmp/virtio trace,,x/trace-path-cpu0' \
  -device virtserialport,bus=vtrace-serial0.0,nr=2,chardev=vtrace1,id=vtrace1-port,name=trace-path-cpu0 \
  -chardev 'pipe,id=vtrace2,path=/tmp/virtio trace,,x/trace-path-cpu1' \
  -device virtserialport,bus=vtrace-serial0.0,nr=3,chardev=vtrace2,id=vtrace2-port,name=trace-path-cpu1
`
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if got := shellQuote("it's"); got != `'it'\''s'` {
		t.Errorf("shellQuote(it's) = %s", got)
	}
}

// TestSocketChannel checks that the channel SocketChannel makes reads back
// as one of ours, with its path intact whatever characters the domain's
// name gave it.
func TestSocketChannel(t *testing.T) {
	for _, p := range []string{"/var/lib/vtrace/vm1/agent-ctl-path", `/var/lib/vtrace/a'b"<&>c/trace-path-cpu3`} {
		name := path.Base(p)
		doc := []byte("<domain><name>x</name><devices><controller type='virtio-serial'/>" + SocketChannel(name, p) + "</devices></domain>")
		info, err := Inspect(doc)
		if err != nil {
			t.Fatalf("Inspect of %s: %v", doc, err)
		}
		want := []Channel{{Name: name, Type: "unix", Path: p, Port: -1}}
		if diff := cmp.Diff(want, info.Channels); diff != "" || info.SerialControllers != 1 {
			t.Errorf("channels of %s (-want +got):\n%s; %d virtio-serial controllers", doc, diff, info.SerialControllers)
		}
	}
}
