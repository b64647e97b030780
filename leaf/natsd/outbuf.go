package natsd

import "sync"

// chunkSize is the size of the blocks a client's output is queued in.
const chunkSize = 32 << 10

// chunkPool recycles output blocks between clients and flushes.
var chunkPool = sync.Pool{New: func() any {
	b := make([]byte, 0, chunkSize)
	return &b
}}

// outbuf is the output queued for one client. It is a list of blocks, so
// that a backlog grows by adding blocks instead of copying one ever larger
// buffer, and the writer hands the whole list to one writev.
type outbuf struct {
	chunks [][]byte
	n      int // bytes queued
}

// tail returns the last block if it has room for need more bytes, or a
// new block that does. The caller appends to it and passes the result to
// commit.
func (o *outbuf) tail(need int) []byte {
	if k := len(o.chunks); k > 0 {
		if last := o.chunks[k-1]; cap(last)-len(last) >= need {
			return last
		}
	}
	var b []byte
	if need <= chunkSize {
		b = (*chunkPool.Get().(*[]byte))[:0]
	} else {
		b = make([]byte, 0, need)
	}
	o.chunks = append(o.chunks, b)
	return b
}

// commit stores the tail block after an append to it.
func (o *outbuf) commit(b []byte) {
	k := len(o.chunks) - 1
	o.n += len(b) - len(o.chunks[k])
	o.chunks[k] = b
}

func (o *outbuf) write(p []byte) { o.commit(append(o.tail(len(p)), p...)) }

// take hands the queued blocks to the writer, leaving the queue empty
// (reusing spare as its list).
func (o *outbuf) take(spare [][]byte) [][]byte {
	chunks := o.chunks
	o.chunks, o.n = spare[:0], 0
	return chunks
}

// drop discards what is queued.
func (o *outbuf) drop() {
	release(o.chunks)
	o.chunks, o.n = o.chunks[:0], 0
}

// release returns pooled blocks; larger one-off blocks go to the garbage
// collector.
func release(chunks [][]byte) {
	for i, b := range chunks {
		if cap(b) == chunkSize {
			b = b[:0]
			chunkPool.Put(&b)
		}
		chunks[i] = nil
	}
}

// frameSize bounds the bytes a MSG or HMSG frame takes on the wire: the
// arguments plus the op name, separators, two sizes of at most 10 digits
// and the CR LFs.
func frameSize(subj, sid, reply, hdr, payload []byte) int {
	return len(subj) + len(sid) + len(reply) + len(hdr) + len(payload) + 40
}
