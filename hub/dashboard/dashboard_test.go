package dashboard_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/canopy-iot/canopy/hub/dashboard"
)

func get(t *testing.T, method, path string) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	dashboard.Handler().ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	resp := rec.Result()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

func TestHandlerServesAssets(t *testing.T) {
	for _, tc := range []struct{ path, contentType, contains string }{
		{"/", "text/html; charset=utf-8", `<script src="app.js"`},
		{"/index.html", "text/html; charset=utf-8", `id="conn"`},
		{"/app.js", "text/javascript; charset=utf-8", "new EventSource('/api/events')"},
		{"/app.css", "text/css; charset=utf-8", ".devices"},
		{"/favicon.svg", "image/svg+xml", "<svg"},
	} {
		resp, body := get(t, http.MethodGet, tc.path)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %s", tc.path, resp.Status)
			continue
		}
		if ct := resp.Header.Get("Content-Type"); ct != tc.contentType {
			t.Errorf("GET %s: Content-Type %q, want %q", tc.path, ct, tc.contentType)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.HasPrefix(csp, "default-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q, want default-src 'self'", tc.path, csp)
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "no-cache" {
			t.Errorf("GET %s: Cache-Control %q, want no-cache", tc.path, cc)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: no X-Content-Type-Options: nosniff", tc.path)
		}
		if !strings.Contains(body, tc.contains) {
			t.Errorf("GET %s: body lacks %q", tc.path, tc.contains)
		}
	}
}

func TestHandlerRefuses(t *testing.T) {
	for _, path := range []string{"/missing.js", "/assets/app.js", "/../dashboard.go", "/dashboard.go"} {
		if resp, _ := get(t, http.MethodGet, path); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %s, want 404", path, resp.Status)
		}
	}
	resp, _ := get(t, http.MethodPost, "/")
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /: %s (Allow %q), want 405 with Allow: GET, HEAD", resp.Status, resp.Header.Get("Allow"))
	}
	resp, body := get(t, http.MethodHead, "/app.js")
	if resp.StatusCode != http.StatusOK || body != "" {
		t.Errorf("HEAD /app.js: %s with %d bytes of body", resp.Status, len(body))
	}
}

func TestHandlerRevalidates(t *testing.T) {
	resp, _ := get(t, http.MethodGet, "/app.js")
	etag := resp.Header.Get("ETag")
	if etag == "" {
		t.Fatal("GET /app.js: no ETag")
	}
	req := httptest.NewRequest(http.MethodGet, "/app.js", nil)
	req.Header.Set("If-None-Match", etag)
	rec := httptest.NewRecorder()
	dashboard.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusNotModified || rec.Body.Len() != 0 {
		t.Errorf("GET /app.js with its ETag: %d with %d bytes, want 304 without a body", rec.Code, rec.Body.Len())
	}
	if other, _ := get(t, http.MethodGet, "/app.css"); other.Header.Get("ETag") == etag {
		t.Error("app.css and app.js share an ETag")
	}
}

// TestAssetsFitThePolicy keeps the page within its own policy: no inline
// script, style or event handler, nothing loaded from elsewhere, and data
// never parsed as HTML.
func TestAssetsFitThePolicy(t *testing.T) {
	_, html := get(t, http.MethodGet, "/")
	for _, tag := range regexp.MustCompile(`<script[^>]*>[^<]*`).FindAllString(html, -1) {
		if !strings.Contains(tag, ` src="`) || !strings.HasSuffix(tag, ">") {
			t.Errorf("index.html has an inline script: %q", tag)
		}
	}
	for _, re := range []string{`<style`, `\sstyle=`, `\son[a-z]+=`, `(?:src|href)="(?:https?:)?//`} {
		if m := regexp.MustCompile(re).FindString(html); m != "" {
			t.Errorf("index.html has %q, which the Content-Security-Policy forbids or which loads from elsewhere", m)
		}
	}
	_, js := get(t, http.MethodGet, "/app.js")
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "http://", "https://"} {
		if strings.Contains(js, bad) {
			t.Errorf("app.js uses %q: data must reach the page as text, from this origin only", bad)
		}
	}
}
