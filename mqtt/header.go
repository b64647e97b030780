package mqtt

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/mochi-mqtt/server/v2/packets"
)

// NATS header blocks, as far as the bridge needs them:
//
//	NATS/1.0\r\n
//	Nmqtt-Pub: 1\r\n
//	key: value\r\n (one per MQTT user property)
//	\r\n
const headerVersion = "NATS/1.0"

// appendHeader writes the header block for an MQTT publish: its QoS and
// its user properties. A property NATS cannot carry as a header field (a
// key that is empty or holds ':' or blanks, a CR or LF anywhere) is an
// error rather than a silent rewrite.
func appendHeader(dst []byte, qos byte, props []packets.UserProperty) ([]byte, error) {
	dst = append(dst, headerVersion+"\r\n"+headerQoS+": "...)
	dst = append(dst, '0'+qos)
	dst = append(dst, "\r\n"...)
	for _, p := range props {
		if p.Key == "" || strings.ContainsFunc(p.Key, func(r rune) bool { return r == ':' || r <= ' ' || r == 0x7f }) {
			return nil, fmt.Errorf("user property %q: NATS header names cannot be empty or hold ':', blanks or control characters", p.Key)
		}
		if strings.ContainsAny(p.Val, "\r\n") {
			return nil, fmt.Errorf("user property %q: NATS header values cannot hold CR or LF", p.Key)
		}
		dst = append(dst, p.Key...)
		dst = append(dst, ": "...)
		dst = append(dst, p.Val...)
		dst = append(dst, "\r\n"...)
	}
	return append(dst, "\r\n"...), nil
}

// parseHeader reads a header block leniently, as nats.go does: the QoS
// from Nmqtt-Pub (-1 without one) and every other field, except
// nats-server's MQTT bookkeeping, as user properties. The status line and
// malformed lines are skipped.
func parseHeader(hdr []byte) (qos int, props []packets.UserProperty) {
	qos = -1
	lines := bytes.Split(hdr, []byte("\n"))
	if len(lines) == 0 || !bytes.HasPrefix(lines[0], []byte(headerVersion)) {
		return qos, nil
	}
	for _, line := range lines[1:] {
		line = bytes.TrimSuffix(line, []byte("\r"))
		key, val, ok := bytes.Cut(line, []byte(":"))
		if !ok || len(key) == 0 {
			continue
		}
		val = bytes.TrimSpace(val)
		if string(key) == headerQoS {
			if len(val) > 0 && val[0] >= '0' && val[0] <= '2' {
				qos = int(val[0] - '0')
			}
			continue
		}
		if bytes.HasPrefix(key, []byte(headerPrefix)) {
			continue
		}
		props = append(props, packets.UserProperty{Key: string(key), Val: string(val)})
	}
	return qos, props
}
