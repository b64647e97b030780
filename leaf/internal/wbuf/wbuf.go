// Package wbuf queues output for one connection of the leaf: a list of
// pooled blocks, so that a backlog grows by adding blocks instead of
// copying one ever larger buffer, written with one writev. leaf/natsd (per
// client) and leaf/uplink (the link to the hub) use it.
package wbuf

import (
	"net"
	"sync"
)

// ChunkSize is the size of the pooled blocks.
const ChunkSize = 32 << 10

var chunkPool = sync.Pool{New: func() any {
	b := make([]byte, 0, ChunkSize)
	return &b
}}

// Queue is the output waiting for one connection. It is not safe for
// concurrent use: its owner locks around it.
type Queue struct {
	chunks [][]byte
	n      int // bytes queued
}

// Len is the number of bytes queued.
func (q *Queue) Len() int { return q.n }

// Tail returns the last block if it has room for need more bytes, or a new
// block that does. Append to it and pass the result to Commit.
func (q *Queue) Tail(need int) []byte {
	if k := len(q.chunks); k > 0 {
		if last := q.chunks[k-1]; cap(last)-len(last) >= need {
			return last
		}
	}
	var b []byte
	if need <= ChunkSize {
		b = (*chunkPool.Get().(*[]byte))[:0]
	} else {
		b = make([]byte, 0, need)
	}
	q.chunks = append(q.chunks, b)
	return b
}

// Commit stores the tail block after an append to it.
func (q *Queue) Commit(b []byte) {
	k := len(q.chunks) - 1
	q.n += len(b) - len(q.chunks[k])
	q.chunks[k] = b
}

// Write queues p.
func (q *Queue) Write(p []byte) { q.Commit(append(q.Tail(len(p)), p...)) }

// Take hands the queued blocks to the writer and leaves the queue empty,
// reusing spare (a list Take returned before, via Writer) as its list.
func (q *Queue) Take(spare [][]byte) [][]byte {
	chunks := q.chunks
	q.chunks, q.n = spare[:0], 0
	return chunks
}

// Drop discards what is queued.
func (q *Queue) Drop() {
	release(q.chunks)
	q.chunks, q.n = q.chunks[:0], 0
}

// Writer writes taken blocks. It belongs to one writer goroutine.
type Writer struct {
	bufs [][]byte
}

// WriteTo writes chunks to conn with one writev and recycles the blocks.
// It returns the bytes written and chunks emptied, for reuse with Take.
func (w *Writer) WriteTo(conn net.Conn, chunks [][]byte) (int64, [][]byte, error) {
	// net.Buffers consumes the list it is given; keep chunks intact to
	// recycle the blocks.
	w.bufs = append(w.bufs[:0], chunks...)
	bufs := net.Buffers(w.bufs)
	n, err := bufs.WriteTo(conn)
	clear(w.bufs)
	release(chunks)
	return n, chunks[:0], err
}

// release returns pooled blocks; larger one-off blocks go to the garbage
// collector.
func release(chunks [][]byte) {
	for i, b := range chunks {
		if cap(b) == ChunkSize {
			b = b[:0]
			chunkPool.Put(&b)
		}
		chunks[i] = nil
	}
}
