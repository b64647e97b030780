package leafapp

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/canopy-iot/canopy/leaf"
)

// statusTimeout bounds the request to the running leaf: it answers from
// memory, at once.
const statusTimeout = 5 * time.Second

// liveStatus is `canopy-leaf status` while the leaf runs: what it is
// doing, read from its monitor's /status at monitor.listen.
func liveStatus(ctx context.Context, cfg leaf.Config, asJSON bool, out io.Writer) error {
	base, err := leaf.MonitorClientURL(cfg.Monitor)
	if err != nil {
		return err
	}
	body, err := fetchStatus(ctx, base+"/status")
	if err != nil {
		return fmt.Errorf("no running leaf answers at %s (monitor.listen): %w", base, err)
	}
	if asJSON {
		_, err := out.Write(body)
		return err
	}
	var st leaf.Status
	if err := json.Unmarshal(body, &st); err != nil {
		return fmt.Errorf("%s/status: not a leaf's status: %w", base, err)
	}
	_, err = io.WriteString(out, summary(st, time.Now()))
	return err
}

// fetchStatus GETs url (plain HTTP) over one connection. It writes the
// request and reads the answer with net/http but is not an http.Client:
// http.Transport (HTTP/2, connection pools, proxies) adds some 400 KiB to
// the ARM leaf binary, which has a size budget (see leaf/enroll's post).
func fetchStatus(ctx context.Context, u string) ([]byte, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	req.Close = true // one request: "Connection: close"
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", req.URL.Host)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if deadline, ok := ctx.Deadline(); ok {
		conn.SetDeadline(deadline)
	}
	w := bufio.NewWriter(conn)
	if err := req.Write(w); err != nil {
		return nil, fmt.Errorf("send request: %w", err)
	}
	if err := w.Flush(); err != nil {
		return nil, fmt.Errorf("send request: %w", err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 4<<20))
	if err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", u, res.Status)
	}
	return body, nil
}

// summary is the human reading of a status, one fact per line.
func summary(st leaf.Status, now time.Time) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p("device    %s (server_name %s), canopy-leaf %s, up %s", st.Device, st.ServerName, st.Version, duration(st.Uptime.Duration()))
	switch l := st.Link; {
	case l == nil:
		p("link      none configured (local only)")
	case l.Up:
		p("link      up to %s since %s (%s), %d reconnects, %d msgs out, %d in", l.URL,
			l.Since.Local().Format(time.DateTime), duration(now.Sub(l.Since)), l.Reconnects, l.MsgsOut, l.MsgsIn)
	case l.URL == "":
		p("link      DOWN, never connected")
	default:
		p("link      DOWN (last hub %s), %d reconnects", l.URL, l.Reconnects)
	}
	if l := st.Link; l != nil && l.LastError != "" {
		p("          last error: %s", l.LastError)
	}
	if len(st.Streams) == 0 {
		p("streams   none")
	}
	for i, s := range st.Streams {
		label := "streams  "
		if i > 0 {
			label = "         "
		}
		line := fmt.Sprintf("%s %s: backlog %d msgs, %s", label, s.Name, s.Msgs, bytesize(s.Bytes))
		if s.Msgs > 0 {
			line += ", oldest " + duration(s.OldestAge.Duration())
		}
		line += fmt.Sprintf(", %d dropped", s.DroppedTotal())
		if s.Refused > 0 {
			line += fmt.Sprintf(", %d refused", s.Refused)
		}
		p("%s", line)
	}
	p("nats      %d clients, %d msgs in, %d out  %s", st.NATS.Clients, st.NATS.MsgsIn, st.NATS.MsgsOut, st.NATS.URL)
	if m := st.MQTT; m != nil {
		p("mqtt      %d clients, %d msgs in, %d out, %d retained  %s", m.Clients, m.MsgsIn, m.MsgsOut, m.Retained, m.URL)
	} else {
		p("mqtt      off")
	}
	for i, f := range st.Firmware {
		label := "firmware "
		if i > 0 {
			label = "         "
		}
		p("%s %s %s (%s)", label, f.Name, orNone(f.Version), orNone(f.State))
	}
	if s := st.Store; s != nil {
		p("store     %s (%s free inside)  %s", bytesize(uint64(max(s.FileBytes, 0))), bytesize(uint64(max(s.FreeBytes, 0))), s.Path)
	}
	return b.String()
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// duration rounds d for reading: seconds under an hour, minutes beyond.
func duration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	default:
		return d.Round(time.Minute).String()
	}
}

// bytesize writes n in B, KiB, MiB or GiB.
func bytesize(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n)/unit, 0
	for v >= unit && i < 2 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %s", v, []string{"KiB", "MiB", "GiB"}[i])
}
