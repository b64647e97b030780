package stream

import (
	"encoding/binary"
	"errors"
)

// A stored record is the local subject, the header block (possibly empty)
// and the payload, each but the last length-prefixed:
//
//	uvarint(len(subject)) subject uvarint(len(header)) header payload
func encode(subj, hdr, payload []byte) []byte {
	b := make([]byte, 0, 2*binary.MaxVarintLen32+len(subj)+len(hdr)+len(payload))
	b = binary.AppendUvarint(b, uint64(len(subj)))
	b = append(b, subj...)
	b = binary.AppendUvarint(b, uint64(len(hdr)))
	b = append(b, hdr...)
	return append(b, payload...)
}

var errBadRecord = errors.New("stream: malformed stored record")

func decode(rec []byte) (subj, hdr, payload []byte, err error) {
	n, k := binary.Uvarint(rec)
	if k <= 0 || uint64(len(rec)-k) < n {
		return nil, nil, nil, errBadRecord
	}
	subj, rec = rec[k:k+int(n)], rec[k+int(n):]
	n, k = binary.Uvarint(rec)
	if k <= 0 || uint64(len(rec)-k) < n {
		return nil, nil, nil, errBadRecord
	}
	return subj, rec[k : k+int(n)], rec[k+int(n):], nil
}

// withMsgID returns hdr with a Nats-Msg-Id header added, building a header
// block when there is none.
func withMsgID(dst, hdr []byte, id string) []byte {
	const version = "NATS/1.0\r\n"
	if len(hdr) < 4 {
		dst = append(dst, version...)
	} else {
		// Insert before the blank line that ends the block.
		dst = append(dst, hdr[:len(hdr)-2]...)
	}
	dst = append(dst, "Nats-Msg-Id: "...)
	dst = append(dst, id...)
	return append(dst, "\r\n\r\n"...)
}

// EncodeRecord and DecodeRecord are the stored record's format, for other
// parts of the leaf that store messages (the command downlink).
func EncodeRecord(subj, hdr, payload []byte) []byte { return encode(subj, hdr, payload) }

// DecodeRecord reads a record EncodeRecord made.
func DecodeRecord(rec []byte) (subj, hdr, payload []byte, err error) { return decode(rec) }
