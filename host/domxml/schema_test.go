package domxml

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/vtrace/vtrace/internal/testutil"
)

// TestIntegrationLibvirtSchema: what Patch and Unpatch write passes
// libvirt's own domain schema (virt-xml-validate, as `virsh edit` checks
// a document): the golden cases, and the many-vCPU ones up to the largest
// CPU number, whose ports and controller indexes stay within the schema's
// two digits.
func TestIntegrationLibvirtSchema(t *testing.T) {
	validate := testutil.NeedProgram(t, "virt-xml-validate", "libvirt-clients")
	testutil.NeedProgram(t, "xmllint", "libxml2-utils")
	dir := t.TempDir()
	check := func(name string, doc []byte) {
		t.Helper()
		path := filepath.Join(dir, name+".xml")
		if err := os.WriteFile(path, doc, 0o644); err != nil {
			t.Fatal(err)
		}
		if b, err := exec.Command(validate, path, "domain").CombinedOutput(); err != nil {
			t.Errorf("%s does not validate: %v\n%s", name, err, b)
		}
	}
	for _, c := range goldenCases {
		in, err := os.ReadFile(filepath.Join("testdata", c.name+".xml"))
		if err != nil {
			t.Fatal(err)
		}
		out, _, err := Patch(in, c.spec)
		if err != nil {
			t.Fatal(err)
		}
		check(c.name+"-patched", out)
		un, _, _ := Unpatch(out)
		check(c.name+"-unpatched", un)
	}
	agent, _ := os.ReadFile("testdata/guest-agent.xml")
	for _, cpus := range []int{100, 288, 8192} {
		out, _, err := Patch(agent, Spec{Dir: "/var/lib/vtrace/big", CPUs: cpus})
		if err != nil {
			t.Fatal(err)
		}
		check(fmt.Sprintf("guest-agent-%d-vcpus", cpus), out)
	}
}
