// Package dashboard holds the fleet dashboard: a single page of static
// HTML, CSS and JavaScript embedded into canopy-hub. It only serves the
// assets; the data comes from the hub's console API (/api/fleet and the
// /api/events stream), which lives in package hub together with the login
// and authentication that guard every path, this handler included.
//
// The page uses no framework, no CDN and no build step, so it works on an
// offline site network and under a strict Content-Security-Policy. Only
// package hub imports this package; it depends on the standard library
// alone.
package dashboard

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed assets
var assets embed.FS

// contentSecurityPolicy allows only same-origin resources: the page has no
// inline scripts or styles, so an injected payload in device data cannot
// execute even if an escaping bug slipped in.
const contentSecurityPolicy = "default-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// contentTypes is fixed here rather than taken from the host's MIME
// database, which on minimal appliances may lack or mislabel .js.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
	".png":  "image/png",
}

// Handler serves the dashboard assets, mounted at "/". "/" serves
// index.html; unknown paths get 404. Only GET and HEAD are allowed. Each
// asset carries a strong ETag, so the browser's revalidation (the assets
// are no-cache: a hub upgrade must show at once) costs a 304.
func Handler() http.Handler {
	files, err := load(assets, "assets")
	if err != nil {
		// The embed pattern is fixed at compile time; this cannot fail.
		panic("dashboard: embedded assets: " + err.Error())
	}
	return &handler{files: files}
}

type file struct {
	data        []byte
	contentType string
	etag        string
}

type handler struct {
	files map[string]file // by path below the root, "index.html"
}

func load(fsys fs.FS, dir string) (map[string]file, error) {
	root, err := fs.Sub(fsys, dir)
	if err != nil {
		return nil, err
	}
	files := map[string]file{}
	err = fs.WalkDir(root, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(root, name)
		if err != nil {
			return err
		}
		ext := path.Ext(name)
		ct, ok := contentTypes[ext]
		if !ok {
			ct = mime.TypeByExtension(ext)
		}
		if ct == "" {
			ct = "application/octet-stream"
		}
		sum := sha256.Sum256(data)
		files[name] = file{data: data, contentType: ct, etag: `"` + hex.EncodeToString(sum[:16]) + `"`}
		return nil
	})
	return files, err
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name := path.Clean("/" + r.URL.Path)
	if name == "/" {
		name = "/index.html"
	}
	f, ok := h.files[strings.TrimPrefix(name, "/")]
	if !ok {
		http.NotFound(w, r)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", f.contentType)
	hd.Set("Content-Security-Policy", contentSecurityPolicy)
	hd.Set("Cache-Control", "no-cache")
	hd.Set("ETag", f.etag)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	// ServeContent answers If-None-Match with 304 and HEAD without a body.
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(f.data))
}
