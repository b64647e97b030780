package leaf

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/canopy-iot/canopy/leaf/natsd"
)

// Serving installed firmware to the device's own clients: sensors on
// MQTT (through the bridge) and applications on NATS. For each firmware
// with serve_local, a publish on firmware.<name>.get (MQTT
// firmware/<name>/get) asks for "manifest" (the signed manifest, which
// the sensor verifies with the tenant's key) or a chunk index N (the
// artifact's bytes of chunk N, checked against the manifest's hash). The
// answer goes to the reply subject when there is one (a NATS request, an
// MQTT 5 response topic), else it is published on
// firmware.<name>.manifest or firmware.<name>.chunk.<N> (MQTT
// firmware/<name>/manifest, firmware/<name>/chunk/<N>); a request that
// cannot be served is answered on firmware.<name>.error with the reason.
// Everything stays on the device.

// serveLocalFirmware subscribes for the firmware names that ask for it;
// the returned function ends it.
func (n *Node) serveLocalFirmware() (func(), error) {
	if n.firmware == nil {
		return func() {}, nil
	}
	in := n.nats.NewInternal("firmware-local")
	for name, ic := range n.cfg.Firmware.Installers {
		if !ic.ServeLocal {
			continue
		}
		prefix := "firmware." + name + "."
		_, err := in.Subscribe(prefix+"get", "", func(_, reply, _, payload []byte) {
			n.answerFirmware(in, name, prefix, string(reply), strings.TrimSpace(string(payload)))
		})
		if err != nil {
			in.Close()
			return nil, fmt.Errorf("firmware %s: %w", name, err)
		}
	}
	return in.Close, nil
}

func (n *Node) answerFirmware(in *natsd.Internal, name, prefix, reply, what string) {
	answer := func(subject string, payload []byte) {
		if reply != "" {
			subject = reply
		}
		in.PublishLocal([]byte(subject), nil, nil, payload)
	}
	fail := func(format string, args ...any) {
		in.PublishLocal([]byte(prefix+"error"), nil, nil, fmt.Appendf(nil, format, args...))
	}
	path, signed, m, ok := n.firmware.agent.Installed(name)
	if !ok {
		fail("firmware %s is not installed on this device", name)
		return
	}
	if what == "manifest" {
		answer(prefix+"manifest", signed)
		return
	}
	i, err := strconv.Atoi(what)
	if err != nil || i < 0 || i >= len(m.Chunks) {
		fail("ask for \"manifest\" or a chunk index from 0 to %d, not %q", len(m.Chunks)-1, what)
		return
	}
	f, err := os.Open(path)
	if err != nil {
		fail("firmware %s: the artifact is not kept on this device", name)
		return
	}
	defer f.Close()
	chunk := make([]byte, m.ChunkLen(i))
	if _, err := f.ReadAt(chunk, m.ChunkOffset(i)); err != nil && err != io.EOF {
		fail("firmware %s: read chunk %d: %v", name, i, err)
		return
	}
	if err := m.CheckChunk(i, chunk); err != nil {
		// The installed file changed under us (a hook, a person).
		fail("firmware %s: %v", name, err)
		return
	}
	answer(prefix+"chunk."+strconv.Itoa(i), chunk)
}
