package store

import "go.etcd.io/bbolt"

// releaseMappedEvery is how many bytes the store may append or read
// before it releases its mapping of the file's pages again.
const releaseMappedEvery = 8 << 20

// releaseMappedIfDue releases the file's mapped pages once enough was
// appended or read since the last time. Committer only.
func (s *Store) releaseMappedIfDue() {
	if s.touched.Load() < releaseMappedEvery {
		return
	}
	s.touched.Store(0)
	err := s.view(func(tx *bbolt.Tx) error { return releaseMapped(s.db, tx) })
	if err != nil {
		// Only memory use is at stake: say so once in a while, go on.
		s.log.Debug("releasing the store file's mapped pages failed", "err", err)
	}
}
