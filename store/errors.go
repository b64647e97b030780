package store

import (
	"errors"
	"fmt"
	"strings"
	"syscall"

	bolterrors "go.etcd.io/bbolt/errors"
)

var (
	// ErrLocked is returned by Open when another process holds the file
	// for longer than Options.OpenTimeout.
	ErrLocked = errors.New("store file is locked by another process")
	// ErrFormat is returned by Open for a file written in a format this
	// release does not read.
	ErrFormat = errors.New("unknown store file format")
	// ErrClosed is returned for any use of a closed Store or its logs.
	ErrClosed = errors.New("store closed")
	// ErrFull is returned by Append on a log whose limits refuse new
	// records (DiscardNew), and for a record larger than MaxBytes. The
	// wrapping error names the limit. Nothing was stored.
	ErrFull = errors.New("log full")
	// ErrDiskFull is returned when the file system has no room (ENOSPC,
	// or EFBIG/EDQUOT from a size limit or quota). The transaction was
	// rolled back; the store stays readable and retries are safe.
	ErrDiskFull = errors.New("disk full")
	// ErrNotFound is returned by Get for a sequence that is not present.
	ErrNotFound = errors.New("record not found")
	// ErrUnknownConsumer is returned by Ack for a consumer that was never
	// registered with Consumer, or was removed.
	ErrUnknownConsumer = errors.New("unknown consumer")
	// ErrAckRange is returned by Ack beyond the log's last sequence: a
	// consumer cannot have seen a record that does not exist yet.
	ErrAckRange = errors.New("ack beyond last sequence")
)

// ioError marks err as ErrDiskFull when it means the file system is out of
// room, so that callers can tell "retry later, maybe drop something" from
// "the store is broken".
func ioError(err error) error {
	if isDiskFull(err) {
		return fmt.Errorf("%w: %w", ErrDiskFull, err)
	}
	return err
}

func isDiskFull(err error) bool {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EFBIG) ||
		errors.Is(err, syscall.EDQUOT) || errors.Is(err, bolterrors.ErrMaxSizeReached) {
		return true
	}
	// bbolt formats the errors of growing the file with %s ("file resize
	// error: ..."), which drops the errno; its text is all that is left.
	msg := err.Error()
	for _, e := range []syscall.Errno{syscall.ENOSPC, syscall.EFBIG, syscall.EDQUOT} {
		if strings.Contains(msg, e.Error()) {
			return true
		}
	}
	return false
}
