// Package layout encodes what store writes into its bbolt file: record keys
// and values, the per-log state and the file's format marker. It is store's
// on-disk compatibility surface: an encoding changes only together with
// FormatVersion. It has no I/O and imports only the standard library; only
// store imports it.
package layout

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// FormatVersion is written into every store file; a file with another
// version is refused rather than misread.
const FormatVersion = 1

// ErrCorrupt is returned for a key or value that this format cannot hold.
var ErrCorrupt = errors.New("corrupt store value")

// KeyLen is the length of a record key.
const KeyLen = 8

// AppendKey appends the key of record seq to dst. Keys are big-endian so
// that bbolt's byte order is sequence order and appends land at the end.
func AppendKey(dst []byte, seq uint64) []byte { return binary.BigEndian.AppendUint64(dst, seq) }

// Key returns the key of record seq.
func Key(seq uint64) []byte { return AppendKey(make([]byte, 0, KeyLen), seq) }

// Seq decodes a record key.
func Seq(key []byte) (uint64, error) {
	if len(key) != KeyLen {
		return 0, fmt.Errorf("%w: record key of %d bytes", ErrCorrupt, len(key))
	}
	return binary.BigEndian.Uint64(key), nil
}

// A record value is a version byte, the append time in Unix nanoseconds
// (big-endian int64), then the payload. The version byte leaves room for a
// later record kind (headers, a subject) without rewriting old files.
const (
	recordV1 = 1
	// RecordOverhead is what a record value holds besides its payload.
	RecordOverhead = 1 + 8
)

// AppendRecord appends the value of a record appended at (Unix ns) to dst.
func AppendRecord(dst []byte, at int64, data []byte) []byte {
	dst = append(dst, recordV1)
	dst = binary.BigEndian.AppendUint64(dst, uint64(at))
	return append(dst, data...)
}

// ParseRecord decodes a record value. data aliases v.
func ParseRecord(v []byte) (at int64, data []byte, err error) {
	if len(v) < RecordOverhead || v[0] != recordV1 {
		return 0, nil, fmt.Errorf("%w: record value of %d bytes", ErrCorrupt, len(v))
	}
	return int64(binary.BigEndian.Uint64(v[1:9])), v[RecordOverhead:], nil
}

// Reasons a record can be dropped; they index State.Dropped.
const (
	DroppedMaxMsgs = iota
	DroppedMaxBytes
	DroppedMaxAge
	NumDropped
)

// State is what a log keeps besides its records and cursors. It is
// rewritten by every transaction that changes the log, so it stays small
// and fixed-size.
type State struct {
	Last    uint64 // last sequence ever assigned; never decreases
	LastAt  int64  // append time of Last (Unix ns); later appends never go below it
	Msgs    uint64 // records present
	Bytes   uint64 // payload bytes present
	Acked   uint64 // every record up to here was acknowledged by all consumers; never decreases
	Dropped [NumDropped]uint64
	Refused uint64 // records refused by a DiscardNew limit
}

const (
	stateV1  = 1
	stateLen = 1 + 8*(5+NumDropped+1)
)

// MarshalState encodes s.
func MarshalState(s State) []byte {
	b := make([]byte, 0, stateLen)
	b = append(b, stateV1)
	b = binary.BigEndian.AppendUint64(b, s.Last)
	b = binary.BigEndian.AppendUint64(b, uint64(s.LastAt))
	b = binary.BigEndian.AppendUint64(b, s.Msgs)
	b = binary.BigEndian.AppendUint64(b, s.Bytes)
	b = binary.BigEndian.AppendUint64(b, s.Acked)
	for _, d := range s.Dropped {
		b = binary.BigEndian.AppendUint64(b, d)
	}
	return binary.BigEndian.AppendUint64(b, s.Refused)
}

// ParseState decodes a value written by MarshalState.
func ParseState(b []byte) (State, error) {
	if len(b) != stateLen || b[0] != stateV1 {
		return State{}, fmt.Errorf("%w: log state of %d bytes", ErrCorrupt, len(b))
	}
	next := func() uint64 {
		v := binary.BigEndian.Uint64(b[1:9])
		b = b[8:]
		return v
	}
	var s State
	s.Last = next()
	s.LastAt = int64(next())
	s.Msgs = next()
	s.Bytes = next()
	s.Acked = next()
	for i := range s.Dropped {
		s.Dropped[i] = next()
	}
	s.Refused = next()
	return s, nil
}

// Uint64 encodes a cursor position or the format version.
func Uint64(v uint64) []byte { return binary.BigEndian.AppendUint64(make([]byte, 0, 8), v) }

// ParseUint64 decodes a value written by Uint64.
func ParseUint64(b []byte) (uint64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("%w: integer of %d bytes", ErrCorrupt, len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}
