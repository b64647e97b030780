package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/canopy-iot/canopy/store/internal/layout"
)

// Options configure a Store. Every field is optional: the zero value is a
// durable store with the defaults written on each field.
type Options struct {
	// OpenTimeout bounds how long Open waits for the file lock when another
	// process holds it, after which Open fails with ErrLocked. Default 1s.
	// (bbolt's own zero means "wait forever", which would hang a second
	// canopy-leaf started on the same data directory.)
	OpenTimeout time.Duration
	// Logger receives the store's logs (and bbolt's, at debug level).
	// Default: discarded.
	Logger *slog.Logger
	// CommitMaxWait bounds how long an append waits for other appends to
	// share its transaction and fsync. Default 2ms; negative: never wait.
	// The store waits only while recent transactions carried several
	// appenders, so a lone writer is never delayed.
	CommitMaxWait time.Duration
	// ReclaimMinFree is the free space (in bytes) above which the file is
	// rewritten to give space back to the file system, provided that free
	// space is also more than half the file. Default 8MiB; negative turns
	// the background reclaim off (Store.Reclaim still works).
	ReclaimMinFree int64
	// NoSync skips every fsync. Only for tests: with it, a crash or power
	// cut can lose acknowledged records or corrupt the file.
	NoSync bool
	// Now is the clock that stamps records and measures their age.
	// Default time.Now; tests inject a fake clock so that age limits need
	// no sleeping.
	Now func() time.Time

	// housekeepEvery is how often limits by age, pending deletions and the
	// reclaim threshold are checked. Default 1s.
	housekeepEvery time.Duration
	// noBackground stops every deletion and reclaim that no call asked
	// for, for tests that compare snapshots taken by several calls.
	noBackground bool
}

// Defaults.
const (
	DefaultOpenTimeout    = time.Second
	DefaultCommitMaxWait  = 2 * time.Millisecond
	DefaultReclaimMinFree = 8 << 20
	defaultHousekeepEvery = time.Second
)

// withDefaults returns a copy of o with every unset field at its default.
func (o Options) withDefaults() Options {
	if o.OpenTimeout <= 0 {
		o.OpenTimeout = DefaultOpenTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.CommitMaxWait == 0 {
		o.CommitMaxWait = DefaultCommitMaxWait
	}
	if o.ReclaimMinFree == 0 {
		o.ReclaimMinFree = DefaultReclaimMinFree
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.housekeepEvery <= 0 {
		o.housekeepEvery = defaultHousekeepEvery
	}
	return o
}

// Store is one open store file. Its methods and those of its logs are safe
// for concurrent use.
type Store struct {
	path string
	opts Options
	log  *slog.Logger

	// dbMu lets reads run concurrently with each other and with the
	// committer, and excludes them while the committer swaps in a
	// reclaimed file or Close closes it.
	dbMu sync.RWMutex
	db   *bbolt.DB // nil once closed

	// mu guards closed. Senders hold it shared while they queue a
	// request, so that Close, which takes it exclusively, knows that
	// nothing more will arrive once it has it.
	mu     sync.RWMutex
	closed bool

	openMu sync.Mutex // serializes Log, which may create a log
	logsMu sync.Mutex // guards logs; the committer takes it briefly
	logs   map[string]*Log

	reqs chan *request
	quit chan struct{}
	done chan struct{}

	// Owned by the committer.
	logList   []*Log    // every log opened, for housekeeping
	retryAt   time.Time // no idle housekeeping before this, after a failure
	reclaimAt time.Time // no background reclaim before this, after a failure

	commits  atomic.Uint64
	appended atomic.Uint64
	reclaims atomic.Uint64
	// touched counts the bytes appended or read since the file's mapped
	// pages were last released (see releaseMapped).
	touched atomic.Int64
}

// Open opens the store file at path, creating it if it does not exist. The
// directory must exist. Only one process may have the file open; Open
// waits up to Options.OpenTimeout for it and then fails with ErrLocked.
func Open(path string, opts Options) (*Store, error) {
	opts = opts.withDefaults()
	db, err := openBolt(path, opts, false)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if err := initFile(db); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	// We hold the lock on the file, so nobody else is reclaiming it: a
	// leftover copy is from a reclaim that a crash interrupted.
	if err := os.Remove(path + reclaimTemp); err != nil && !errors.Is(err, os.ErrNotExist) {
		db.Close()
		return nil, fmt.Errorf("open store %s: remove stale copy: %w", path, err)
	}
	s := &Store{
		path: path,
		opts: opts,
		log:  opts.Logger.With("component", "store"),
		db:   db,
		logs: make(map[string]*Log),
		reqs: make(chan *request, 256),
		quit: make(chan struct{}),
		done: make(chan struct{}),
	}
	go s.commitLoop()
	return s, nil
}

// openBolt opens a bbolt file with the store's settings. Besides the lock
// timeout, it makes sure that the file it locked is still the one at path:
// a process that waited for the lock while another one reclaimed the file
// would otherwise lock the replaced, unlinked file and write into the void.
func openBolt(path string, opts Options, noSync bool) (*bbolt.DB, error) {
	deadline := time.Now().Add(opts.OpenTimeout)
	for {
		var f *os.File
		bo := &bbolt.Options{
			Timeout:      time.Until(deadline),
			NoSync:       opts.NoSync || noSync,
			FreelistType: bbolt.FreelistMapType, // fast with large freelists; order does not matter to us
			Logger:       newBoltLogger(opts.Logger),
			OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
				var err error
				f, err = os.OpenFile(name, flag, perm)
				return f, err
			},
		}
		if bo.Timeout <= 0 {
			bo.Timeout = time.Millisecond
		}
		db, err := bbolt.Open(path, 0o600, bo)
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("%w (waited %v)", ErrLocked, opts.OpenTimeout)
		}
		if err != nil {
			return nil, ioError(err)
		}
		locked, err1 := f.Stat()
		named, err2 := os.Stat(path)
		if err := errors.Join(err1, err2); err != nil {
			db.Close()
			return nil, err
		}
		if os.SameFile(locked, named) {
			return db, nil
		}
		db.Close()
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%w (the file was replaced while waiting)", ErrLocked)
		}
	}
}

// initFile writes the format marker into a new file and checks it in an
// existing one.
func initFile(db *bbolt.DB) error {
	return db.Update(func(tx *bbolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return ioError(err)
		}
		if v := meta.Get(keyFormat); v != nil {
			f, err := layout.ParseUint64(v)
			if err != nil || f != layout.FormatVersion {
				return fmt.Errorf("%w: version %x, this release reads %d", ErrFormat, v, layout.FormatVersion)
			}
		} else if err := meta.Put(keyFormat, layout.Uint64(layout.FormatVersion)); err != nil {
			return ioError(err)
		}
		if _, err := tx.CreateBucketIfNotExists(bucketLogs); err != nil {
			return ioError(err)
		}
		return nil
	})
}

// Path returns the file's path.
func (s *Store) Path() string { return s.path }

// Close waits for queued appends and acknowledgements to be committed,
// then closes the file. Further calls return nil.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.quit)
	<-s.done
	s.dbMu.Lock()
	defer s.dbMu.Unlock()
	err := s.db.Close()
	s.db = nil
	if err != nil {
		return fmt.Errorf("close store %s: %w", s.path, err)
	}
	return nil
}

// StoreStats describe the file and the work done on it since Open.
type StoreStats struct {
	Commits   uint64 // write transactions committed (each one fsync'd)
	Appended  uint64 // records appended
	Reclaims  uint64 // times the file was rewritten to shrink it
	FileBytes int64  // size of the file
	FreeBytes int64  // bytes in free pages inside the file
}

// Stats returns counters and the file's size.
func (s *Store) Stats() StoreStats {
	st := StoreStats{
		Commits:  s.commits.Load(),
		Appended: s.appended.Load(),
		Reclaims: s.reclaims.Load(),
	}
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.db != nil {
		st.FileBytes, st.FreeBytes = fileUsage(s.db, s.path)
	}
	return st
}

// fileUsage returns the size of db's file, at path, and its free bytes.
func fileUsage(db *bbolt.DB, path string) (size, free int64) {
	bs := db.Stats()
	free = int64(bs.FreePageN+bs.PendingPageN) * int64(db.Info().PageSize)
	if fi, err := os.Stat(path); err == nil {
		size = fi.Size()
	}
	return size, free
}

// view runs fn in a read transaction.
func (s *Store) view(fn func(tx *bbolt.Tx) error) error {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.db == nil {
		return ErrClosed
	}
	return s.db.View(fn)
}

// submit queues r for the committer and waits for its result.
func (s *Store) submit(r *request) error {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return ErrClosed
	}
	s.reqs <- r
	s.mu.RUnlock()
	<-r.done
	return r.err
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// dirOf returns the directory holding path.
func dirOf(path string) string { return filepath.Dir(path) }

// boltLogger routes bbolt's logs into slog. Everything goes to debug
// level: the errors bbolt logs are returned to the store too, and the layer
// that handles an error is the one that logs it. bbolt calls it on every
// commit, so it is handed to bbolt only when debug logging is on.
type boltLogger struct{ l *slog.Logger }

func newBoltLogger(l *slog.Logger) bbolt.Logger {
	if !l.Enabled(context.Background(), slog.LevelDebug) {
		return nil // bbolt's own discarding logger, which it skips cheaply
	}
	return boltLogger{l.With("component", "bbolt")}
}

func (b boltLogger) Debug(v ...any)              { b.l.Debug(fmt.Sprint(v...)) }
func (b boltLogger) Debugf(f string, v ...any)   { b.l.Debug(fmt.Sprintf(f, v...)) }
func (b boltLogger) Info(v ...any)               { b.l.Debug(fmt.Sprint(v...)) }
func (b boltLogger) Infof(f string, v ...any)    { b.l.Debug(fmt.Sprintf(f, v...)) }
func (b boltLogger) Warning(v ...any)            { b.l.Debug(fmt.Sprint(v...)) }
func (b boltLogger) Warningf(f string, v ...any) { b.l.Debug(fmt.Sprintf(f, v...)) }
func (b boltLogger) Error(v ...any)              { b.l.Debug(fmt.Sprint(v...)) }
func (b boltLogger) Errorf(f string, v ...any)   { b.l.Debug(fmt.Sprintf(f, v...)) }

// bbolt never calls Fatal; should a later version do so, a panic keeps
// the rule that only main exits.
func (b boltLogger) Fatal(v ...any)            { panic(fmt.Sprint(v...)) }
func (b boltLogger) Fatalf(f string, v ...any) { panic(fmt.Sprintf(f, v...)) }
func (b boltLogger) Panic(v ...any)            { panic(fmt.Sprint(v...)) }
func (b boltLogger) Panicf(f string, v ...any) { panic(fmt.Sprintf(f, v...)) }

var _ bbolt.Logger = boltLogger{}
