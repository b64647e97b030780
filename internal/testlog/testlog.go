// Package testlog collects a component's log output in tests, so that a
// test can assert what was logged (and how often). Only tests import it.
package testlog

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
)

// Buffer is a concurrency-safe log sink.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// New returns a buffer and a text logger writing into it at level.
func New(level slog.Level) (*Buffer, *slog.Logger) {
	b := &Buffer{}
	return b, slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: level}))
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything logged so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Contains returns an error unless s was logged; use it with wait.For.
func (b *Buffer) Contains(s string) error {
	if !strings.Contains(b.String(), s) {
		return fmt.Errorf("log does not contain %q", s)
	}
	return nil
}

// Count is how many times s occurs in the log.
func (b *Buffer) Count(s string) int { return strings.Count(b.String(), s) }
