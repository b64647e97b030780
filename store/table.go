package store

import (
	"bytes"
	"errors"
	"fmt"

	"go.etcd.io/bbolt"

	"github.com/canopy-iot/canopy/store/internal/layout"
)

// Bounds of table keys and values.
const (
	// MaxKeyLen is the longest table key: bbolt's limit on keys.
	MaxKeyLen = bbolt.MaxKeySize
	// MaxValueLen is the largest table value. Tables hold small state
	// that is rewritten in place; the bound keeps one Put within what a
	// transaction is meant to carry (a batch of appends stops at the same
	// size) and within a small device's memory.
	MaxValueLen = maxBatchBytes
)

var (
	// ErrInvalidKey is returned for an empty table key or one longer than
	// MaxKeyLen. Nothing was written.
	ErrInvalidKey = errors.New("invalid table key")
	// ErrValueTooLarge is returned by Put for a value longer than
	// MaxValueLen. Nothing was written.
	ErrValueTooLarge = errors.New("table value too large")
)

// Table is a durable key/value namespace of the store, for small state
// that is rewritten in place (MQTT sessions, retained messages) rather than
// appended. Its writes go through the store's committer like appends do:
// each one is on disk when it returns, and concurrent writes to any table
// or log share one transaction and one fsync. Its methods are safe for
// concurrent use. Keys are ordered by their bytes.
type Table struct {
	s    *Store
	name string
	key  []byte
}

// Table opens the table called name, creating it if it does not exist.
// Table names are validated like log names and live in their own
// namespace: a table and a log may have the same name. Calling Table again
// for the same name returns another handle to the same table.
func (s *Store) Table(name string) (*Table, error) {
	if err := validName(name); err != nil {
		return nil, fmt.Errorf("open table %q: %w", name, err)
	}
	t := &Table{s: s, name: name, key: []byte(name)}
	r := newRequest(opTableInit, nil)
	r.table = t
	err := s.submit(r)
	r.release()
	if err != nil {
		return nil, fmt.Errorf("open table %s: %w", name, err)
	}
	return t, nil
}

// Name returns the table's name.
func (t *Table) Name() string { return t.name }

// Put stores value under key, replacing what was there. It returns once
// the value is on disk; value may be reused as soon as Put returns. Putting
// the value that is stored already costs no disk write. A full disk fails
// it with ErrDiskFull, leaving the previous value in place.
func (t *Table) Put(key string, value []byte) error {
	if err := validKey(key); err != nil {
		return fmt.Errorf("table %s: put %.64q: %w", t.name, key, err)
	}
	if len(value) > MaxValueLen {
		return fmt.Errorf("table %s: put %.64q: %w: %d bytes, at most %d", t.name, key, ErrValueTooLarge, len(value), MaxValueLen)
	}
	if err := t.write(opTablePut, key, value); err != nil {
		return fmt.Errorf("table %s: put %.64q: %w", t.name, key, err)
	}
	return nil
}

// Delete removes key durably. Deleting a key that is not there is not an
// error, and costs no disk write.
func (t *Table) Delete(key string) error {
	if err := validKey(key); err != nil {
		return fmt.Errorf("table %s: delete %.64q: %w", t.name, key, err)
	}
	if err := t.write(opTableDelete, key, nil); err != nil {
		return fmt.Errorf("table %s: delete %.64q: %w", t.name, key, err)
	}
	return nil
}

// DeletePrefix removes every key that starts with prefix, in one durable
// transaction: either all of them are gone or, on error, none. An empty
// prefix empties the table. Deleting nothing costs no disk write.
func (t *Table) DeletePrefix(prefix string) error {
	if err := t.write(opTableDeletePrefix, prefix, nil); err != nil {
		return fmt.Errorf("table %s: delete prefix %.64q: %w", t.name, prefix, err)
	}
	return nil
}

func (t *Table) write(kind opKind, key string, value []byte) error {
	r := newRequest(kind, nil)
	r.table, r.name = t, key
	if value != nil {
		r.one[0] = value
		r.data = r.one[:]
	}
	err := t.s.submit(r)
	r.release()
	return err
}

// Get returns a copy of the value stored under key; ok is false when
// there is none.
func (t *Table) Get(key string) (value []byte, ok bool, err error) {
	if err := validKey(key); err != nil {
		return nil, false, fmt.Errorf("table %s: get %.64q: %w", t.name, key, err)
	}
	err = t.s.view(func(tx *bbolt.Tx) error {
		b, err := t.bucket(tx)
		if err != nil {
			return err
		}
		if v := b.Get([]byte(key)); v != nil {
			value, ok = bytes.Clone(v), true
		}
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("table %s: get %.64q: %w", t.name, key, err)
	}
	return value, ok, nil
}

// Range calls fn for every key that starts with prefix (every key, for an
// empty prefix), in byte order. It stops early, returning fn's error
// unchanged, when fn fails. value is valid only until fn returns; fn must
// copy what it keeps.
//
// Range copies keys and values out of the file in chunks and calls fn
// outside any transaction, so fn may write to the table (or any other).
// Each chunk is read from one committed state; writes that commit while
// Range runs are seen only if they land beyond the chunk being visited.
func (t *Table) Range(prefix string, fn func(key string, value []byte) error) error {
	type entry struct {
		key   string
		value []byte
	}
	var (
		entries []entry
		arena   []byte
		pre     = []byte(prefix)
		from    = pre
	)
	for {
		entries, arena = entries[:0], arena[:0]
		err := t.s.view(func(tx *bbolt.Tx) error {
			b, err := t.bucket(tx)
			if err != nil {
				return err
			}
			c := b.Cursor()
			for k, v := c.Seek(from); k != nil && bytes.HasPrefix(k, pre); k, v = c.Next() {
				if len(entries) == readChunkRecords || (len(entries) > 0 && len(arena)+len(v) > readChunkBytes) {
					break
				}
				off := len(arena)
				arena = append(arena, v...)
				entries = append(entries, entry{string(k), arena[off:len(arena):len(arena)]})
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("table %s: range %.64q: %w", t.name, prefix, err)
		}
		if len(entries) == 0 {
			return nil
		}
		for _, e := range entries {
			if err := fn(e.key, e.value); err != nil {
				return err
			}
		}
		// The next chunk starts right after the last key seen.
		from = append([]byte(entries[len(entries)-1].key), 0)
	}
}

func (t *Table) bucket(tx *bbolt.Tx) (*bbolt.Bucket, error) {
	if tables := tx.Bucket(bucketTables); tables != nil {
		if b := tables.Bucket(t.key); b != nil {
			return b, nil
		}
	}
	return nil, fmt.Errorf("%w: bucket of table %s missing", layout.ErrCorrupt, t.name)
}

func validKey(key string) error {
	if key == "" || len(key) > MaxKeyLen {
		return fmt.Errorf("%w: must be 1 to %d bytes, is %d", ErrInvalidKey, MaxKeyLen, len(key))
	}
	return nil
}

// Table writes, in the committer. Each counts in t.tableWrites only if it
// changed the file, so that a transaction that changed nothing is not
// committed. Their only errors are storage errors, which abort the
// transaction: arguments were checked before the request was queued.

// tableInit creates t's bucket if needed.
func (t *txn) tableInit(tb *Table) error {
	if b := t.tx.Bucket(bucketTables); b != nil && b.Bucket(tb.key) != nil {
		return nil
	}
	tables, err := t.tx.CreateBucketIfNotExists(bucketTables)
	if err != nil {
		return t.fail(ioError(err))
	}
	if _, err := tables.CreateBucket(tb.key); err != nil {
		return t.fail(ioError(err))
	}
	t.tableWrites++
	return nil
}

func (t *txn) tablePut(tb *Table, key string, value []byte) error {
	b, err := tb.bucket(t.tx)
	if err != nil {
		return t.fail(err)
	}
	// bbolt keeps key and value until the commit: the key goes into the
	// transaction's arena, the value is the caller's, who waits for the
	// commit.
	k := append(t.alloc(len(key)), key...)
	if old := b.Get(k); old != nil && bytes.Equal(old, value) {
		return nil // already on disk
	}
	if value == nil {
		value = []byte{} // an empty value is a value: Get finds it
	}
	if err := b.Put(k, value); err != nil {
		return t.fail(ioError(err))
	}
	t.tableWrites++
	return nil
}

func (t *txn) tableDelete(tb *Table, key string) error {
	b, err := tb.bucket(t.tx)
	if err != nil {
		return t.fail(err)
	}
	k := []byte(key)
	if b.Get(k) == nil {
		return nil
	}
	if err := b.Delete(k); err != nil {
		return t.fail(ioError(err))
	}
	t.tableWrites++
	return nil
}

func (t *txn) tableDeletePrefix(tb *Table, prefix string) error {
	b, err := tb.bucket(t.tx)
	if err != nil {
		return t.fail(err)
	}
	// Collect first: deleting under a cursor that then moves on is
	// fragile in bbolt.
	var (
		keys [][]byte
		pre  = []byte(prefix)
		c    = b.Cursor()
	)
	for k, _ := c.Seek(pre); k != nil && bytes.HasPrefix(k, pre); k, _ = c.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return t.fail(ioError(err))
		}
	}
	t.tableWrites += len(keys)
	return nil
}
