package natsd

// Batch collects the clients that got output while one goroutine handled
// a read, so each client's writer is woken once per read instead of once
// per message. A client's reader has one; so does the uplink's reader. A
// Batch belongs to one goroutine.
type Batch struct {
	touched []*client
	last    *client
}

// touch records that t has new output to write.
func (b *Batch) touch(t *client) {
	if t == b.last {
		return
	}
	b.last = t
	for _, x := range b.touched {
		if x == t {
			return
		}
	}
	b.touched = append(b.touched, t)
}

// Flush wakes the writer of every client touched since the last Flush.
func (b *Batch) Flush() {
	for i, t := range b.touched {
		t.signalFlush()
		b.touched[i] = nil
	}
	b.touched = b.touched[:0]
	b.last = nil
}
