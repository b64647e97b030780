//go:build !linux

package store

import "go.etcd.io/bbolt"

// releaseMapped is a no-op where madvise's semantics differ.
func releaseMapped(*bbolt.DB, *bbolt.Tx) error { return nil }
