package hub

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/canopy-iot/canopy/internal/config"
)

// Dashboard configures the hub's console: the fleet dashboard, the JSON
// API behind it (and behind `canopy-hub status`) and the
// Prometheus metrics, all on one listener and guarded by one token.
type Dashboard struct {
	// Listen is the console's address. Default: 127.0.0.1:7481; "off"
	// disables it. Should the default address be taken (a second hub on
	// the same machine), the hub runs without a console and says so; an
	// address set here must be free.
	Listen string `yaml:"listen"`
	// TLS serves the console over HTTPS. Default: none (plain HTTP, fit
	// for the loopback address only).
	TLS *TLS `yaml:"tls"`
	// TokenFile holds the token that opens the console (and /metrics).
	// The hub creates it on first start, readable by its owner only.
	// Default: dashboard.token in operator.key_dir in operator mode,
	// else in jetstream.store_dir.
	TokenFile string `yaml:"token_file"`
}

// DefaultDashboardListen is where the console listens by default.
const DefaultDashboardListen = "127.0.0.1:7481"

// dashboardTokenName is the token file's name in its default directory.
const dashboardTokenName = "dashboard.token"

func (c Config) dashboardDefaults() Config {
	if c.Dashboard.Listen == "" {
		c.Dashboard.Listen = DefaultDashboardListen
	}
	if c.Dashboard.TokenFile == "" {
		dir := c.JetStream.StoreDir
		if c.Operator.On() {
			dir = c.Operator.KeyDir
		}
		c.Dashboard.TokenFile = filepath.Join(dir, dashboardTokenName)
	}
	return c
}

func (c Config) validateDashboard(errs *config.List) {
	d := c.Dashboard
	checkListen(errs, "dashboard.listen", d.Listen, true)
	checkTLS(errs, "dashboard.tls", d.TLS)
	if d.Listen == Off {
		return
	}
	// A missing file is made at start; one that others can read is a
	// leaked token, refused before anything listens.
	if fi, err := os.Stat(d.TokenFile); err == nil {
		if err := checkTokenMode(d.TokenFile, fi); err != nil {
			errs.Addf("dashboard.token_file", "%v", err)
		}
	}
}

// checkTokenMode refuses a token file that group or others may read or
// write, as fleet.CheckPermissions does for the key directory.
func checkTokenMode(path string, fi fs.FileInfo) error {
	if fi.IsDir() {
		return fmt.Errorf("%s is a directory", path)
	}
	if runtime.GOOS == "windows" {
		return nil
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%s is accessible by group or others (mode %04o); fix with: chmod 600 %s", path, perm, path)
	}
	return nil
}

// tokenBytes is the size of a generated token before hex encoding.
const tokenBytes = 32

// ReadDashboardToken reads the console's token from path (the token file
// of dashboard.token_file), refusing a file that group or others may
// read.
func ReadDashboardToken(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("dashboard token: %w", err)
	}
	if err := checkTokenMode(path, fi); err != nil {
		return "", fmt.Errorf("dashboard token: %w", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("dashboard token: %w", err)
	}
	token := strings.TrimSpace(string(b))
	switch {
	case token == "":
		return "", fmt.Errorf("dashboard token: %s is empty (delete it and restart the hub to make a new one)", path)
	case len(token) > 1024 || strings.ContainsAny(token, " \t\r\n"):
		return "", fmt.Errorf("dashboard token: %s holds more than one token (want a single line)", path)
	}
	return token, nil
}

// loadDashboardToken reads the token file, making it with a fresh random
// token when it does not exist.
func loadDashboardToken(path string) (string, error) {
	token, err := ReadDashboardToken(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return token, err
	}
	b := make([]byte, tokenBytes)
	rand.Read(b)
	token = hex.EncodeToString(b)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("dashboard token: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if errors.Is(err, fs.ErrExist) {
		// Another node sharing the directory made it first.
		return ReadDashboardToken(path)
	}
	if err != nil {
		return "", fmt.Errorf("dashboard token: %w", err)
	}
	if _, err := f.WriteString(token + "\n"); err != nil {
		f.Close()
		os.Remove(path)
		return "", fmt.Errorf("dashboard token: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return "", fmt.Errorf("dashboard token: write %s: %w", path, err)
	}
	return token, nil
}
