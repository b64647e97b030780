package dial

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"unicode/utf8"
)

// frameHeader is the part of an RFC 6455 frame header (section 5.2) that
// a client keeps once the header is checked: a server never masks, so
// there is no key.
type frameHeader struct {
	fin    bool
	op     byte
	length uint64 // payload bytes
}

func (h frameHeader) control() bool { return h.op&0x8 != 0 }

// decodeHeader checks and decodes the frame header at the start of b,
// which holds at least 2 bytes. It returns the header size; when b is
// shorter than that, h is not yet valid and the caller must call again
// with more bytes. It enforces everything that one header alone can break:
// reserved bits (no extension is negotiated), unknown opcodes, a mask
// (servers must not mask, section 5.1), control frames that are
// fragmented or longer than 125 bytes (section 5.5), and 64-bit lengths
// with the top bit set. Fragmentation across frames is the reader's check.
func decodeHeader(b []byte) (h frameHeader, size int, err error) {
	b0, b1 := b[0], b[1]
	h.fin = b0&finBit != 0
	h.op = b0 & 0x0F
	if b0&rsvBits != 0 {
		return h, 0, fmt.Errorf("%w: reserved bits 0x%02x set without a negotiated extension", ErrProtocol, b0&rsvBits)
	}
	switch h.op {
	case opContinuation, opText, opBinary, opClose, opPing, opPong:
	default:
		return h, 0, fmt.Errorf("%w: unknown opcode 0x%x", ErrProtocol, h.op)
	}
	if b1&maskBit != 0 {
		return h, 0, fmt.Errorf("%w: masked frame from the server", ErrProtocol)
	}
	length7 := b1 &^ maskBit
	if h.control() {
		if !h.fin {
			return h, 0, fmt.Errorf("%w: fragmented control frame (opcode 0x%x)", ErrProtocol, h.op)
		}
		if length7 > maxControlPayload {
			return h, 0, fmt.Errorf("%w: control frame (opcode 0x%x) longer than %d bytes", ErrProtocol, h.op, maxControlPayload)
		}
	}
	switch length7 {
	case 126:
		if len(b) < 4 {
			return h, 4, nil
		}
		h.length = uint64(binary.BigEndian.Uint16(b[2:4]))
		return h, 4, nil
	case 127:
		if len(b) < 10 {
			return h, 10, nil
		}
		h.length = binary.BigEndian.Uint64(b[2:10])
		if h.length>>63 != 0 {
			return h, 0, fmt.Errorf("%w: 64-bit payload length with the most significant bit set", ErrProtocol)
		}
		return h, 10, nil
	default:
		h.length = uint64(length7)
		return h, 2, nil
	}
}

// appendFrame appends one frame to dst. With a key the payload is masked,
// as a client must do (section 5.3); without one (only tests build server
// frames) it is copied as is. The shortest length encoding is used.
func appendFrame(dst []byte, op byte, fin bool, key *[4]byte, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= finBit
	}
	var b1 byte
	if key != nil {
		b1 = maskBit
	}
	n := len(payload)
	switch {
	case n <= 125:
		dst = append(dst, b0, b1|byte(n))
	case n <= 0xFFFF:
		dst = append(dst, b0, b1|126)
		dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	default:
		dst = append(dst, b0, b1|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	if key == nil {
		return append(dst, payload...)
	}
	dst = append(dst, key[:]...)
	start := len(dst)
	dst = append(dst, payload...)
	maskBytes(dst[start:], *key)
	return dst
}

// maskBytes XORs b with the repeated key (section 5.3), eight bytes at a
// time where it can. Masking twice unmasks.
func maskBytes(b []byte, key [4]byte) {
	k32 := binary.LittleEndian.Uint32(key[:])
	k64 := uint64(k32) | uint64(k32)<<32
	for len(b) >= 8 {
		binary.LittleEndian.PutUint64(b, binary.LittleEndian.Uint64(b)^k64)
		b = b[8:]
	}
	for i := range b {
		b[i] ^= key[i&3]
	}
}

// closePayload is the body of a close frame carrying code and no reason.
func closePayload(code int) []byte {
	if code == closeNoStatus {
		return nil
	}
	return binary.BigEndian.AppendUint16(nil, uint16(code))
}

// parseClose checks a close frame's body (section 5.5.1): empty, or a
// status code that may appear on the wire (section 7.4) followed by UTF-8.
func parseClose(p []byte) (code int, err error) {
	switch {
	case len(p) == 0:
		return closeNoStatus, nil
	case len(p) == 1:
		return 0, fmt.Errorf("%w: close frame with a 1-byte body", ErrProtocol)
	}
	code = int(binary.BigEndian.Uint16(p))
	if !validCloseCode(code) {
		return 0, fmt.Errorf("%w: close frame with status code %d", ErrProtocol, code)
	}
	if !utf8.Valid(p[2:]) {
		return 0, fmt.Errorf("%w: close reason is not UTF-8", ErrProtocol)
	}
	return code, nil
}

// validCloseCode reports whether code may be sent in a close frame: the
// codes RFC 6455 and its registry define for use on the wire, and the
// ranges for libraries (3000-3999) and applications (4000-4999).
func validCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// acceptKey is the Sec-WebSocket-Accept value a server must answer to key
// (section 4.2.2, item 5.4).
func acceptKey(key string) string {
	h := sha1.Sum([]byte(key + wsGUID))
	return base64.StdEncoding.EncodeToString(h[:])
}
