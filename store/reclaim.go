package store

import (
	"errors"
	"fmt"
	"os"
	"time"

	"go.etcd.io/bbolt"
)

// bbolt reuses the pages that deletions free but never gives them back to
// the file system, so after a long outage has been forwarded the file keeps
// its peak size. Reclaiming copies the live data into a new file and swaps
// it in:
//
//  1. copy into <path>.reclaim with bbolt.Compact (pages filled completely),
//     without fsync per transaction, then fsync it once;
//  2. rename it over <path> and fsync the directory;
//  3. switch readers to the new file and close the old one.
//
// It runs in the committer, so no write can happen meanwhile: appends wait
// for the copy (which is only started when at most half the file is live
// data). Readers keep reading the old file until the swap. A crash before
// the rename leaves the old file and a stale copy that Open removes; after
// it, the new file, complete and synced. The new file is open (and locked)
// before the rename, so no other process can slip in between.

const (
	reclaimTxBytes = 4 << 20         // bound on the copy's transactions, for memory
	reclaimRetry   = 5 * time.Minute // after a failed background reclaim
)

// Reclaim rewrites the file so that it holds only live data, giving free
// space back to the file system. The store does this by itself when free
// pages exceed Options.ReclaimMinFree and half the file; Reclaim does it
// now, whatever the numbers. Appends wait while it copies.
func (s *Store) Reclaim() error {
	r := newRequest(opReclaim, nil)
	err := s.submit(r)
	r.release()
	return err
}

// reclaim runs in the committer.
func (s *Store) reclaim() error {
	tmp := s.path + reclaimTemp
	before, _ := fileUsage(s.db, s.path)
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("reclaim %s: %w", s.path, err)
	}
	dst, err := openBolt(tmp, s.opts, true)
	if err != nil {
		return fmt.Errorf("reclaim %s: %w", s.path, err)
	}
	fail := func(err error) error {
		_ = dst.Close()
		_ = os.Remove(tmp)
		return fmt.Errorf("reclaim %s: %w", s.path, ioError(err))
	}
	if err := bbolt.Compact(dst, s.db, reclaimTxBytes); err != nil {
		return fail(err)
	}
	if !s.opts.NoSync {
		if err := dst.Sync(); err != nil {
			return fail(err)
		}
	}
	dst.NoSync = s.opts.NoSync
	if err := os.Rename(tmp, s.path); err != nil {
		return fail(err)
	}
	// From here on the new file is the store, whatever else fails.
	s.dbMu.Lock()
	old := s.db
	s.db = dst
	s.dbMu.Unlock()
	s.reclaims.Add(1)
	errClose := old.Close()
	if err := syncDir(dirOf(s.path)); err != nil {
		return fmt.Errorf("reclaim %s: sync directory: %w", s.path, err)
	}
	if errClose != nil {
		return fmt.Errorf("reclaim %s: close old file: %w", s.path, errClose)
	}
	after, _ := fileUsage(dst, s.path)
	s.log.Info("store file reclaimed", "bytes_before", before, "bytes", after)
	return nil
}
