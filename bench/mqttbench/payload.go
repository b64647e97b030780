package main

import (
	"encoding/binary"
	"math/bits"
	"time"
)

// headerSize is the size of the header that starts every payload; it is
// also the smallest payload mqttbench sends.
//
//	byte  0      kind: kindData or kindEnd
//	bytes 1–3    zero
//	bytes 4–7    publisher index, big-endian
//	bytes 8–15   sequence number, big-endian, from 0 per publisher; in an
//	             end marker, the number of messages the publisher sent
//	bytes 16–23  when it was published: nanoseconds since epoch, big-endian
const headerSize = 24

const (
	kindData byte = 0
	kindEnd  byte = 1
)

// epoch is this process's reference time. Publishers and subscribers run
// in the same process, so sent and received times on its monotonic clock
// are directly comparable.
var epoch = time.Now()

func sinceEpoch() time.Duration { return time.Since(epoch) }

type header struct {
	kind byte
	pub  uint32
	seq  uint64
	sent time.Duration
}

// newPayload returns a payload of size bytes (at least headerSize) that
// starts with h. Paho keeps the slice it is given until the packet is
// written, or acknowledged at QoS 1 and 2, so every message needs its own.
func newPayload(size int, h header) []byte {
	b := make([]byte, size)
	b[0] = h.kind
	binary.BigEndian.PutUint32(b[4:], h.pub)
	binary.BigEndian.PutUint64(b[8:], h.seq)
	binary.BigEndian.PutUint64(b[16:], uint64(h.sent))
	return b
}

// readHeader decodes the header of b; it reports false if b is too short
// or of an unknown kind.
func readHeader(b []byte) (header, bool) {
	if len(b) < headerSize || (b[0] != kindData && b[0] != kindEnd) || b[1]|b[2]|b[3] != 0 {
		return header{}, false
	}
	return header{
		kind: b[0],
		pub:  binary.BigEndian.Uint32(b[4:]),
		seq:  binary.BigEndian.Uint64(b[8:]),
		sent: time.Duration(binary.BigEndian.Uint64(b[16:])),
	}, true
}

// bitset is a set of sequence numbers that grows as needed.
type bitset []uint64

// testAndSet adds i and reports whether it was already there.
func (b *bitset) testAndSet(i uint64) bool {
	w, m := i/64, uint64(1)<<(i%64)
	if w >= uint64(len(*b)) {
		*b = append(*b, make([]uint64, w+1-uint64(len(*b))+uint64(len(*b))/2)...)
	}
	had := (*b)[w]&m != 0
	(*b)[w] |= m
	return had
}

// countBelow returns how many numbers below n are in the set.
func (b bitset) countBelow(n uint64) uint64 {
	var c uint64
	for w, word := range b {
		lo := uint64(w) * 64
		switch {
		case lo >= n:
			return c
		case lo+64 > n:
			word &= uint64(1)<<(n-lo) - 1
		}
		c += uint64(bits.OnesCount64(word))
	}
	return c
}

// count returns how many numbers are in the set.
func (b bitset) count() uint64 {
	var c uint64
	for _, w := range b {
		c += uint64(bits.OnesCount64(w))
	}
	return c
}
