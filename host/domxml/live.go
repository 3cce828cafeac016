package domxml

import (
	"encoding/xml"
	"strings"
)

// SocketChannel returns the <channel> element of a unix-socket channel
// named name whose socket is path, qemu listening on it (mode='bind'):
// what libvirt hot-plugs into a running domain (DomainAttachDeviceFlags),
// unlike a pipe channel ("Hotplug unsupported for char device type
// 'pipe'"), and what it matches to detach one (by type, source and
// target). The address is left to libvirt, which takes a free port of the
// domain's virtio-serial controllers. path is escaped for an attribute.
func SocketChannel(name, path string) string {
	return "<channel type='unix'><source mode='bind' path='" + attr(path) +
		"'/><target type='virtio' name='" + attr(name) + "'/></channel>"
}

// attr escapes s for a quoted XML attribute value.
func attr(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return strings.ReplaceAll(b.String(), "'", "&#39;")
}
