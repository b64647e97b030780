//go:build linux

package store

import (
	"unsafe"

	"go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// releaseMapped drops the process's mapping of the store file's pages
// (MADV_DONTNEED on bbolt's read-only, shared mapping of the file). They
// stay in the page cache, unchanged, and bbolt maps them again from there
// when it reads them. Without this, the pages that commits and reads
// touch stay in the process's resident set, which then grows with the
// file (by a tenth of the data written, measured) until bbolt remaps it:
// page cache the kernel could drop, but counted as the leaf's memory.
//
// tx must be open: it holds bbolt's mmap lock, so that the mapping cannot
// move while it is advised.
func releaseMapped(db *bbolt.DB, tx *bbolt.Tx) error {
	size := tx.Size() // the pages in use; the mapping covers at least these
	data := db.Info().Data
	if data == 0 || size <= 0 {
		return nil
	}
	// data addresses bbolt's mapping, outside the Go heap.
	mapped := unsafe.Slice(*(**byte)(unsafe.Pointer(&data)), size)
	return unix.Madvise(mapped, unix.MADV_DONTNEED)
}
