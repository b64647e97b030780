// Package store is canopy-leaf's durable store-and-forward log: every local
// message on a stream's subjects is appended here, durably, before it is
// forwarded to the hub, and is deleted only once the hub has acknowledged it
// (or a configured limit gives up on it).
//
// One Store is one bbolt file holding many named logs. A Log hands out
// sequence numbers starting at 1 that only ever grow, even across deletions
// and restarts. Append returns only after the record is on disk (fsync'd);
// concurrent appends from many goroutines share one transaction and one
// fsync (group commit), which is what makes durability affordable on an SD
// card. Consumers (the uplink, typically) register by name and acknowledge
// up to a sequence; a record is deleted once every registered consumer has
// acknowledged it. Limits on messages, bytes and age either drop the oldest
// records or refuse new ones, and every record lost to a limit is counted.
//
// Records are only ever deleted from the front of a log, so the present
// ones run without gaps from FirstSeq to LastSeq. Three things delete them:
// acknowledgements (a record goes once every registered consumer has
// acknowledged it; a log without consumers keeps its records until limits
// remove them), MaxAge (always), and MaxMsgs/MaxBytes with DiscardOld.
// Limits delete acknowledged records first; a record a limit deletes
// before every consumer acknowledged it is counted in Stats.Dropped, by
// limit. With DiscardNew an append that does not fit is refused with
// ErrFull and counted in Stats.Refused. Deletions happen in the
// transaction that calls for them (an append, an ack), bounded in size;
// what is left is deleted in the background, or at once by Log.Compact.
//
// Besides logs, a Store holds named tables: durable key/value maps for
// small state that is rewritten in place rather than appended (the leaf's
// MQTT sessions and retained messages). Table writes go through the same
// group commit as appends, so a Put shares its fsync with whatever else is
// being written, and a reclaim copies tables along with logs.
//
// Durability rests on bbolt's commit protocol: pages are written and
// fsync'd before the meta page that points at them, so a crash or power
// cut at any moment leaves the last committed transaction. A full disk
// fails the append (or table write) with ErrDiskFull and leaves the file
// readable. bbolt never shrinks its file, so the store rewrites it in the
// background when most of it is free (see Options.ReclaimMinFree).
//
// It owns the bbolt file and is the only package in the repository that
// imports go.etcd.io/bbolt; its on-disk encoding lives in store/internal/
// layout. It is imported by leaf (store-and-forward) and imports only bbolt
// and the standard library; it must never import nats-server.
package store
