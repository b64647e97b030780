package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/canopy-iot/canopy/hub/fleet"
)

// The enrollment service: a device holding a one-time token (from
// `canopy-hub device token`) sends the token and the public half of the
// key it made itself, and gets back its user JWT. The token alone opens
// this door; the device's seed never travels.
//
//	POST /v1/enroll  {"token": "...", "public_key": "U..."}
//	200 {"tenant": "acme", "device": "pi-001", "jwt": "...", "leafnode_urls": [...]}
//	4xx/5xx {"error": "..."}: a message for the person enrolling the device

// EnrollPath is the enrollment endpoint's path.
const EnrollPath = "/v1/enroll"

// maxEnrollRequest bounds a request body: a token and a public key are a
// few hundred bytes.
const maxEnrollRequest = 16 << 10

// EnrollRequest is what a device sends.
type EnrollRequest struct {
	Token     string `json:"token"`
	PublicKey string `json:"public_key"`
}

// EnrollResponse is what an enrolled device gets.
type EnrollResponse struct {
	Tenant       string   `json:"tenant"`
	Device       string   `json:"device"`
	JWT          string   `json:"jwt"`
	LeafNodeURLs []string `json:"leafnode_urls"`
	// FirmwareKeys are the keys the device's tenant signs firmware with.
	FirmwareKeys []string `json:"firmware_keys,omitempty"`
}

type enrollServer struct {
	keys   *fleet.Keys
	urls   []string
	log    *slog.Logger
	srv    *http.Server
	ln     net.Listener
	scheme string // http or https
	done   chan struct{}
}

// startEnroll starts the enrollment service when operator mode has it on.
func (h *Hub) startEnroll() error {
	h.mu.Lock()
	cfg := h.cfg
	h.mu.Unlock()
	if h.op == nil || cfg.Operator.EnrollListen == Off {
		return nil
	}
	tlsConf, err := serverTLS(cfg.Operator.EnrollTLS)
	if err != nil {
		return fmt.Errorf("operator.enroll_tls: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.Operator.EnrollListen)
	if err != nil {
		return fmt.Errorf("operator.enroll_listen: %w", err)
	}
	urls := cfg.Operator.LeafNodeURLs
	if len(urls) == 0 {
		if u := h.LeafNodeURL(); u != "" {
			if cfg.LeafNodes.TLS != nil {
				u = "tls" + strings.TrimPrefix(u, "nats")
			}
			urls = []string{u}
		}
	}
	// A key directory of its own, so that the provisioning log names the
	// enrollment service as the actor.
	keys, err := fleet.Open(cfg.Operator.KeyDir, h.log)
	if err != nil {
		ln.Close()
		return fmt.Errorf("operator.key_dir: %w", err)
	}
	keys.SetActor("enrollment-service")
	e := &enrollServer{keys: keys, urls: urls, log: h.log.With("component", "enroll"), done: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc(EnrollPath, e.serveEnroll)
	e.srv = &http.Server{
		Handler:           mux,
		TLSConfig:         tlsConf,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		ErrorLog:          slog.NewLogLogger(h.log.Handler(), slog.LevelDebug),
	}
	e.ln, e.scheme = ln, "http"
	if tlsConf != nil {
		e.scheme = "https"
	}
	go func() {
		defer close(e.done)
		var err error
		if tlsConf != nil {
			err = e.srv.ServeTLS(ln, "", "")
		} else {
			err = e.srv.Serve(ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			e.log.Error("enrollment service stopped", "err", err)
		}
	}()
	h.enroll = e
	h.log.Info("enrollment service listening", "url", h.EnrollURL())
	return nil
}

func (h *Hub) stopEnroll() {
	e := h.enroll
	if e == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		e.srv.Close()
	}
	<-e.done
}

// EnrollURL is the enrollment service's base URL, or "" when it is off.
func (h *Hub) EnrollURL() string {
	e := h.enroll
	if e == nil {
		return ""
	}
	return e.scheme + "://" + e.ln.Addr().String()
}

func (e *enrollServer) serveEnroll(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		enrollError(w, http.StatusMethodNotAllowed, "use POST")
		return
	}
	var req EnrollRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxEnrollRequest))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		enrollError(w, http.StatusBadRequest, "request is not the expected JSON object: "+err.Error())
		return
	}
	switch {
	case req.Token == "":
		enrollError(w, http.StatusBadRequest, "request has no token")
		return
	}
	// Checked before the token is spent, so a client bug does not burn it.
	if err := fleet.CheckUserKey(req.PublicKey); err != nil {
		enrollError(w, http.StatusBadRequest, "public_key: "+err.Error())
		return
	}
	claims, err := e.keys.RedeemToken(req.Token, time.Now())
	if err != nil {
		status := http.StatusInternalServerError
		switch {
		case errors.Is(err, fleet.ErrTokenInvalid):
			status = http.StatusUnauthorized
		case errors.Is(err, fleet.ErrTokenUsed):
			status = http.StatusConflict
		case errors.Is(err, fleet.ErrTokenExpired):
			status = http.StatusGone
		}
		e.log.Warn("enrollment refused", "remote", r.RemoteAddr, "err", err)
		enrollError(w, status, err.Error())
		return
	}
	token, err := e.keys.IssueDevice(claims.Tenant, claims.Device, req.PublicKey)
	if err != nil {
		status := http.StatusInternalServerError
		if errors.Is(err, fleet.ErrNoTenant) {
			status = http.StatusNotFound
		}
		e.log.Error("enrollment failed", "remote", r.RemoteAddr, "tenant", claims.Tenant, "device", claims.Device, "err", err)
		enrollError(w, status, err.Error())
		return
	}
	e.log.Info("device enrolled", "remote", r.RemoteAddr, "tenant", claims.Tenant, "device", claims.Device, "user", req.PublicKey, "token_id", claims.ID)
	resp := EnrollResponse{Tenant: claims.Tenant, Device: claims.Device, JWT: token, LeafNodeURLs: e.urls}
	if t, err := e.keys.Tenant(claims.Tenant); err == nil && t.FirmwareKey != "" {
		resp.FirmwareKeys = []string{t.FirmwareKey}
	}
	writeJSON(w, http.StatusOK, resp)
}

func enrollError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
