package fifo

import (
	"bytes"
	"encoding/binary"
)

// aclAttr is the extended attribute that holds a file's POSIX access ACL.
const aclAttr = "system.posix_acl_access"

// The POSIX ACL extended attribute format, as Linux defines it
// (include/uapi/linux/posix_acl_xattr.h): a little-endian u32 version 2, then
// entries of u16 tag, u16 permissions, u32 id, sorted by tag and id.
const (
	aclVersion  = 2
	aclUserObj  = 0x01
	aclGroupObj = 0x04
	aclGroup    = 0x08
	aclMask     = 0x10
	aclOther    = 0x20
	aclNoID     = 0xffffffff
	aclRW       = 6 // read 4 + write 2
)

// groupACL returns the access ACL that Create gives a FIFO for group gid:
// owner rw, owning group rw, group gid rw, mask rw, others nothing, which is
// mode 0660 (FIFOPerm) plus a named entry for gid.
//
// The named entry is what lets members of gid keep opening the FIFO while
// libvirt's DAC driver has changed its owner and group to qemu's user for
// the time the domain runs: chown changes the owning user and group, not
// the named entries, and libvirt does not touch ACLs.
func groupACL(gid int) []byte {
	var b bytes.Buffer
	le := binary.LittleEndian
	b.Write(le.AppendUint32(nil, aclVersion))
	entry := func(tag, perm uint16, id uint32) {
		b.Write(le.AppendUint16(nil, tag))
		b.Write(le.AppendUint16(nil, perm))
		b.Write(le.AppendUint32(nil, id))
	}
	entry(aclUserObj, aclRW, aclNoID)
	entry(aclGroupObj, aclRW, aclNoID)
	entry(aclGroup, aclRW, uint32(gid))
	entry(aclMask, aclRW, aclNoID)
	entry(aclOther, 0, aclNoID)
	return b.Bytes()
}
