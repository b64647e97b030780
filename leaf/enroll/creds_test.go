package enroll_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/canopy-iot/canopy/leaf/enroll"
)

// checkOnly asserts that dir holds exactly the named files: no temporary
// file is left behind.
func checkOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if strings.Join(got, ",") != strings.Join(names, ",") {
		t.Errorf("%s holds %q, want %q", dir, got, names)
	}
}

func TestWriteCreds(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state") // missing: made 0700
	path := filepath.Join(dir, enroll.CredsFile)
	if err := enroll.WriteCreds(path, []byte("first"), false); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "first" {
		t.Errorf("content %q", b)
	}
	checkOnly(t, dir, enroll.CredsFile)
	if runtime.GOOS != "windows" {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("file mode %v, want 0600", fi.Mode().Perm())
		}
		di, _ := os.Stat(dir)
		if di.Mode().Perm() != 0o700 {
			t.Errorf("directory mode %v, want 0700", di.Mode().Perm())
		}
	}

	// An enrolled device stays enrolled unless forced.
	err := enroll.WriteCreds(path, []byte("second"), false)
	if !errors.Is(err, enroll.ErrEnrolled) || !strings.Contains(err.Error(), path+" already exists: the device is enrolled") {
		t.Fatalf("overwrite without force: %v", err)
	}
	if err := enroll.CheckTarget(path, false); !errors.Is(err, enroll.ErrEnrolled) {
		t.Errorf("CheckTarget: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "first" {
		t.Errorf("content after a refused write %q", b)
	}

	// Forced, the file is replaced by a rename, never rewritten in place:
	// a reader of the old file still reads it whole.
	old, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if err := enroll.CheckTarget(path, true); err != nil {
		t.Errorf("CheckTarget with force: %v", err)
	}
	if err := enroll.WriteCreds(path, []byte("second"), true); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "second" {
		t.Errorf("content after a forced write %q", b)
	}
	if runtime.GOOS != "windows" {
		if b, _ := io.ReadAll(old); string(b) != "first" {
			t.Errorf("the old file was changed in place: %q", b)
		}
	}
	checkOnly(t, dir, enroll.CredsFile)
}

// The directory's mode is left alone when it exists.
func TestWriteCredsExistingDirectory(t *testing.T) {
	dir := t.TempDir()
	os.Chmod(dir, 0o750)
	path := filepath.Join(dir, "device.creds")
	if err := enroll.WriteCreds(path, []byte("x"), false); err != nil {
		t.Fatal(err)
	}
	if di, _ := os.Stat(dir); runtime.GOOS != "windows" && di.Mode().Perm() != 0o750 {
		t.Errorf("directory mode changed to %v", di.Mode().Perm())
	}
}

func TestWriteCredsRefusesADirectory(t *testing.T) {
	path := t.TempDir()
	for _, force := range []bool{false, true} {
		if err := enroll.WriteCreds(path, []byte("x"), force); err == nil || !strings.Contains(err.Error(), "is a directory") {
			t.Errorf("force %v: %v", force, err)
		}
	}
}
