package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/canopy-iot/canopy/firmware"
	"github.com/canopy-iot/canopy/internal/config"
)

func TestParseStatus(t *testing.T) {
	for _, tc := range []struct {
		hdr  string
		code int
		desc string
		bad  bool
	}{
		{hdr: "", code: 0},
		{hdr: "NATS/1.0\r\nNats-Stream: OBJ_firmware\r\nNats-Sequence: 7\r\n\r\n", code: 0},
		{hdr: "NATS/1.0 404 Message Not Found\r\n\r\n", code: 404, desc: "Message Not Found"},
		{hdr: "NATS/1.0 408 Bad Request\r\n\r\n", code: 408, desc: "Bad Request"},
		{hdr: "NATS/1.0 503\r\n\r\n", code: 503},
		{hdr: "NATS/1.0 503", code: 503},
		{hdr: "NATS/1.1\r\n\r\n", bad: true},
		{hdr: "NATS/1.0x\r\n", bad: true},
		{hdr: "NATS/1.0 abc\r\n", bad: true},
		{hdr: "NATS/1.0 99\r\n", bad: true},
		{hdr: "HTTP/1.1 200 OK\r\n", bad: true},
	} {
		st, err := parseStatus([]byte(tc.hdr))
		if (err != nil) != tc.bad || st.code != tc.code || st.desc != tc.desc {
			t.Errorf("parseStatus(%q) = %+v, %v; want %d %q (error %v)", tc.hdr, st, err, tc.code, tc.desc, tc.bad)
		}
	}
	hdr := []byte("NATS/1.0\r\nNats-Sequence: 42\r\nkv-operation: DEL\r\n\r\n")
	if v := headerValue(hdr, "Nats-Sequence"); v != "42" {
		t.Errorf("Nats-Sequence = %q", v)
	}
	if v := headerValue(hdr, "KV-Operation"); v != "DEL" {
		t.Errorf("KV-Operation = %q", v)
	}
	if v := headerValue([]byte("NATS/1.0 404 Nats-Sequence: 1\r\n"), "Nats-Sequence"); v != "" {
		t.Errorf("a field read from the status line: %q", v)
	}
}

// FuzzParseStatus: reply headers come from the network.
func FuzzParseStatus(f *testing.F) {
	for _, s := range []string{"", "NATS/1.0\r\n\r\n", "NATS/1.0 404 Message Not Found\r\n\r\n", "NATS/1.0 503\r\nA: b\r\n", "NATS/1.0\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, hdr []byte) {
		st, err := parseStatus(hdr)
		if err == nil && st.code != 0 && (st.code < 100 || st.code > 999) {
			t.Fatalf("code %d accepted", st.code)
		}
		if err != nil && !errors.Is(err, errHeader) {
			t.Fatalf("error %v does not wrap errHeader", err)
		}
		headerValue(hdr, "Nats-Sequence")
	})
}

func TestWindow(t *testing.T) {
	at := func(hhmm string) time.Time {
		tm, err := time.ParseInLocation("15:04", hhmm, time.Local)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	for _, tc := range []struct {
		win string
		in  []string
		out []string
	}{
		{"02:00-04:00", []string{"02:00", "03:59"}, []string{"01:59", "04:00", "12:00"}},
		{"22:30-05:00", []string{"22:30", "23:59", "00:00", "04:59"}, []string{"05:00", "12:00", "22:29"}},
		{"00:00-00:00", []string{"00:00", "13:37", "23:59"}, nil},
	} {
		w, err := parseWindow(tc.win)
		if err != nil {
			t.Fatalf("%s: %v", tc.win, err)
		}
		for _, s := range tc.in {
			if !w.contains(at(s)) {
				t.Errorf("%s should contain %s", tc.win, s)
			}
		}
		for _, s := range tc.out {
			if w.contains(at(s)) {
				t.Errorf("%s should not contain %s", tc.win, s)
			}
		}
	}
	for _, bad := range []string{"", "2:00-04:00", "02:00", "24:00-01:00", "02:60-03:00", "aa:bb-cc:dd", "02:00-04:00-05:00"} {
		if _, err := parseWindow(bad); err == nil {
			t.Errorf("parseWindow(%q) accepted", bad)
		}
	}
}

func TestConfig(t *testing.T) {
	kp, _ := nkeys.CreateAccount()
	pub, _ := kp.PublicKey()
	on := true
	c := Config{}.WithDefaults("/var/lib/canopy-leaf")
	if c.On() || c.Dir != filepath.Join("/var/lib/canopy-leaf", "firmware") || c.Poll.Std() != DefaultPoll {
		t.Errorf("defaults: %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("the zero configuration: %v", err)
	}
	good := Config{Enabled: &on, TrustedKeys: []string{pub}, Installers: map[string]InstallerConfig{
		"sensor-fw":   {Path: "/opt/sensor/fw.bin", Hook: []string{"/usr/bin/flash", "--now"}, HTTPListen: "0.0.0.0:8088"},
		"canopy-leaf": {Type: TypeSelf},
	}}.WithDefaults("/data")
	if err := good.Validate(); err != nil {
		t.Errorf("a good configuration: %v", err)
	}
	if good.Installers["sensor-fw"].Type != TypeFile {
		t.Errorf("type defaults to %q", good.Installers["sensor-fw"].Type)
	}
	bad := Config{
		Enabled:     &on,
		TrustedKeys: []string{pub, "not-a-key"},
		RateLimit:   config.Size(-1),
		Poll:        config.Duration(time.Millisecond),
		Installers: map[string]InstallerConfig{
			"sensor-fw": {Type: "flash"},
			"cam":       {Type: TypeFile},
			"../etc":    {Path: "/x"},
			"a":         {Type: TypeSelf, Path: "/y", HTTPListen: "nope"},
			"b":         {Type: TypeSelf, Hook: []string{""}},
		},
	}
	err := bad.Validate()
	var paths []string
	for _, e := range config.Flatten(err) {
		var ce *config.Error
		if !errors.As(e, &ce) {
			t.Fatalf("%v is not a *config.Error", e)
		}
		paths = append(paths, ce.Path)
	}
	want := []string{
		"trusted_keys[1]", "dir", "poll", "rate_limit", "installers.../etc", "installers.a.path", "installers.a.http_listen", "installers.a.http_listen",
		"installers.b.type", "installers.b.hook", "installers.cam.path", "installers.sensor-fw.type",
	}
	if strings.Join(paths, " ") != strings.Join(want, " ") {
		t.Errorf("errors at\n%v\nwant\n%v\n%v", paths, want, err)
	}
	if err := (Config{Enabled: &on}).Validate(); err == nil || !strings.Contains(err.Error(), "trusted_keys: required") {
		t.Errorf("no keys: %v", err)
	}
}

func TestFileInstaller(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	dir := t.TempDir()
	staged := filepath.Join(dir, "staged")
	path := filepath.Join(dir, "out", "fw.bin")
	m := firmware.Manifest{Name: "sensor-fw", Version: "2.0.0"}
	envFile := filepath.Join(dir, "env")
	write := func(s string) {
		if err := os.WriteFile(staged, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	read := func(p string) string {
		b, _ := os.ReadFile(p)
		return string(b)
	}

	write("v1")
	fi := &FileInstaller{Path: path, Hook: []string{"/bin/sh", "-c", `echo "$CANOPY_FW_NAME $CANOPY_FW_VERSION $CANOPY_FW_PATH" > ` + envFile}}
	if err := fi.Install(context.Background(), m, staged); err != nil {
		t.Fatal(err)
	}
	if read(path) != "v1" || read(envFile) != "sensor-fw 2.0.0 "+path+"\n" {
		t.Errorf("installed %q, hook saw %q", read(path), read(envFile))
	}
	if read(staged) != "v1" {
		t.Errorf("the staged artifact was consumed")
	}

	write("v2")
	if err := fi.Install(context.Background(), m, staged); err != nil {
		t.Fatal(err)
	}
	if read(path) != "v2" || read(path+".previous") != "v1" {
		t.Errorf("after v2: %q, previous %q", read(path), read(path+".previous"))
	}

	// A failing hook: its last stderr line is the reason, and the
	// previous artifact is back.
	write("v3")
	fi.Hook = []string{"/bin/sh", "-c", "echo starting >&2; echo 'flash: device busy' >&2; exit 3"}
	err := fi.Install(context.Background(), m, staged)
	if err == nil || !strings.Contains(err.Error(), "flash: device busy") || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("failing hook: %v", err)
	}
	if read(path) != "v2" {
		t.Errorf("after a failed hook: %q, want v2 back", read(path))
	}

	fi.Hook, fi.HookTimeout = []string{"/bin/sh", "-c", "exec sleep 10"}, 100*time.Millisecond
	start := time.Now()
	if err := fi.Install(context.Background(), m, staged); err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Errorf("slow hook: %v", err)
	}
	if time.Since(start) > 8*time.Second {
		t.Errorf("the hook's timeout did not stop it")
	}
}

func TestLimiter(t *testing.T) {
	if newLimiter(0) != nil {
		t.Fatal("rate 0 limits")
	}
	const rate = 1 << 20
	l := newLimiter(rate)
	start := time.Now()
	// The first second's worth passes at once; half a second more waits.
	if err := l.wait(context.Background(), rate); err != nil {
		t.Fatal(err)
	}
	if err := l.wait(context.Background(), rate/2); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 400*time.Millisecond || d > 3*time.Second {
		t.Errorf("1.5 s worth took %v", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.wait(ctx, 10*rate); err == nil {
		t.Error("a canceled wait returned nil")
	}
}
