package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/canopy-iot/canopy/firmware"
)

// DefaultHookTimeout bounds a FileInstaller's hook.
const DefaultHookTimeout = 5 * time.Minute

// FileInstaller applies an artifact by placing it at Path, for firmware
// that something else on the device picks up (a sensor's flasher, an
// application): atomically (a temp file in Path's directory, fsync,
// rename, fsync the directory), keeping the artifact it replaces as
// Path + ".previous", then running Hook.
type FileInstaller struct {
	// Path is where the artifact goes.
	Path string
	// Hook, when set, runs after the artifact is placed (argv; no shell)
	// with CANOPY_FW_NAME, CANOPY_FW_VERSION and CANOPY_FW_PATH set. A
	// non-zero exit fails the install and puts the previous artifact
	// back.
	Hook []string
	// HookTimeout bounds the hook. Default: DefaultHookTimeout.
	HookTimeout time.Duration
	// Log receives the hook's outcome. Default: discarded.
	Log *slog.Logger
}

var _ Installer = (*FileInstaller)(nil)

// Install implements Installer. The staged artifact stays where it is.
func (fi *FileInstaller) Install(ctx context.Context, m firmware.Manifest, staged string) error {
	log := fi.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dir := filepath.Dir(fi.Path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	prev := fi.Path + previousExt
	hadPrev := false
	switch _, err := os.Stat(fi.Path); {
	case err == nil:
		// A link keeps the current artifact under the second name without
		// a moment in which Path is missing.
		if err := linkOver(fi.Path, prev); err != nil {
			return fmt.Errorf("keep the previous artifact as %s: %w", prev, err)
		}
		hadPrev = true
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("install %s: %w", fi.Path, err)
	}
	if err := copyFileAtomic(staged, fi.Path, 0o644); err != nil {
		return fmt.Errorf("install %s: %w", fi.Path, err)
	}
	if len(fi.Hook) == 0 {
		return nil
	}
	if err := fi.runHook(ctx, m); err != nil {
		if hadPrev {
			if rerr := linkOver(prev, fi.Path); rerr != nil {
				return fmt.Errorf("%w (and the previous artifact could not be put back: %v)", err, rerr)
			}
		} else {
			os.Remove(fi.Path)
		}
		log.Warn("firmware hook failed; previous artifact put back", "name", m.Name, "version", m.Version, "path", fi.Path, "err", err)
		return err
	}
	log.Info("firmware hook done", "name", m.Name, "version", m.Version, "path", fi.Path)
	return nil
}

// linkOver makes dst a hard link to src's file, replacing dst
// atomically; where links are not possible (some filesystems), a copy.
func linkOver(src, dst string) error {
	tmp := dst + ".tmp"
	os.Remove(tmp)
	if err := os.Link(src, tmp); err != nil {
		return copyFileAtomic(src, dst, 0o644)
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(dst))
}

// runHook runs the hook; a non-zero exit is an error that carries the
// last line the hook wrote to stderr.
func (fi *FileInstaller) runHook(ctx context.Context, m firmware.Manifest) error {
	timeout := fi.HookTimeout
	if timeout <= 0 {
		timeout = DefaultHookTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, fi.Hook[0], fi.Hook[1:]...)
	cmd.Env = append(os.Environ(), envName+"="+m.Name, envVersion+"="+m.Version, envPath+"="+fi.Path)
	stderr := &tail{max: 4 << 10}
	cmd.Stderr = stderr
	cmd.WaitDelay = 5 * time.Second // a hook's children may hold stderr open
	err := cmd.Run()
	if err == nil {
		return nil
	}
	if ctx.Err() == context.DeadlineExceeded {
		err = fmt.Errorf("timed out after %s", timeout)
	}
	if line := stderr.lastLine(); line != "" {
		return fmt.Errorf("hook %s: %v: %s", fi.Hook[0], err, line)
	}
	return fmt.Errorf("hook %s: %w", fi.Hook[0], err)
}

// tail keeps the last max bytes written to it.
type tail struct {
	max int
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = t.buf[over:]
	}
	return len(p), nil
}

func (t *tail) lastLine() string {
	lines := bytes.Split(bytes.TrimSpace(t.buf), []byte("\n"))
	return clip(strings.TrimSpace(string(lines[len(lines)-1])))
}

// NewInstallers builds the file installers of cfg. A self installer is
// the leaf's to supply (it replaces the running binary); it is left out.
func NewInstallers(cfg Config, log *slog.Logger) map[string]Installer {
	out := map[string]Installer{}
	for name, ic := range cfg.Installers {
		if ic.Type != TypeFile && ic.Type != "" {
			continue
		}
		var l *slog.Logger
		if log != nil {
			l = log.With("component", "firmware", "name", name)
		}
		out[name] = &FileInstaller{Path: ic.Path, Hook: ic.Hook, Log: l}
	}
	return out
}
