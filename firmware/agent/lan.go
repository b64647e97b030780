package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/canopy-iot/canopy/firmware"
)

// lanServer serves installed artifacts and their signed manifests to
// sensors on the LAN: GET /firmware/<name> (with Range, so a sensor can
// resume too) and GET /firmware/<name>/manifest. It serves what the
// agent installed last, which the sensor verifies with the manifest.
type lanServer struct {
	addr  string
	dir   layout
	log   *slog.Logger
	names map[string]bool // the firmware it serves
	ln    net.Listener
	srv   *http.Server
}

func newLANServer(addr string, dir layout, log *slog.Logger) *lanServer {
	s := &lanServer{addr: addr, dir: dir, log: log, names: map[string]bool{}}
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return s
}

func (s *lanServer) listen() error {
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("firmware HTTP listener: %w", err)
	}
	s.ln = ln
	return nil
}

// Addr is the address it bound.
func (s *lanServer) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

func (s *lanServer) serve() {
	if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		s.log.Warn("firmware HTTP server stopped", "err", err)
	}
}

func (s *lanServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if s.srv.Shutdown(ctx) != nil {
		s.srv.Close()
	}
}

func (s *lanServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, httpPrefix)
	if !ok {
		http.NotFound(w, r)
		return
	}
	name, manifest := strings.CutSuffix(rest, httpManifestPath)
	if !s.names[name] {
		http.NotFound(w, r)
		return
	}
	path, ctype := s.dir.installedArtifact(name), "application/octet-stream"
	if manifest {
		path, ctype = s.dir.installedManifest(name), "application/json"
	}
	f, err := os.Open(path)
	if err != nil {
		http.Error(w, "firmware "+name+" is not installed", http.StatusNotFound)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		http.Error(w, "cannot read the firmware", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", ctype)
	if rec, ok := s.dir.readInstalled(name); ok && !manifest {
		// Lets a sensor resume with If-Range only while the artifact
		// stays the same.
		w.Header().Set("ETag", `"`+rec.m.SHA256+`"`)
	}
	http.ServeContent(w, r, "", fi.ModTime(), f)
}

// Installed returns what the agent applied last under name: the
// artifact's path (when the installer left it), the signed manifest and
// the manifest it holds. ok is false when nothing was applied through
// the agent.
func (a *Agent) Installed(name string) (artifact string, signed []byte, m firmware.Manifest, ok bool) {
	rec, ok := a.dir.readInstalled(name)
	if !ok {
		return "", nil, firmware.Manifest{}, false
	}
	return a.dir.installedArtifact(name), rec.signed, rec.m, true
}
