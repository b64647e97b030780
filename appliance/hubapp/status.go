package hubapp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/canopy-iot/canopy/hub"
)

// What reads the running hub's console (dashboard.listen):
// `canopy-hub status` sums up the hub and its fleet, and
// `canopy-hub dashboard url` prints the dashboard's login URL.

// statusTimeout bounds the whole exchange with the console.
const statusTimeout = 10 * time.Second

type consoleClient struct {
	load           func() (hub.Config, error)
	stdout, stderr io.Writer
	url            string // --url: the console's base URL
	caFile         string // --ca
}

func dashboardCommand(load func() (hub.Config, error), stdout, stderr io.Writer) *cobra.Command {
	c := &consoleClient{load: load, stdout: stdout, stderr: stderr}
	cmd := &cobra.Command{Use: "dashboard", Short: "The running hub's fleet dashboard"}
	cmd.PersistentFlags().StringVar(&c.url, "url", "", "the console's base URL (default from dashboard.listen and dashboard.tls)")
	cmd.PersistentFlags().StringVar(&c.caFile, "ca", "", "CA file verifying the console's TLS certificate (default dashboard.tls.ca_file)")
	cmd.AddCommand(
		&cobra.Command{
			Use:   "url",
			Short: "Print the dashboard's login URL (it carries the token: keep it to yourself)",
			Args:  cobra.NoArgs,
			RunE: func(*cobra.Command, []string) error {
				base, token, _, err := c.target()
				if err != nil {
					return fmt.Errorf("dashboard url: %w", err)
				}
				fmt.Fprintln(c.stdout, hub.DashboardLoginURL(base, token))
				return nil
			},
		},
	)
	return cmd
}

// liveStatus is `canopy-hub status` while the hub runs: the hub and its
// fleet as the console at dashboard.listen reports them.
func liveStatus(ctx context.Context, cfg hub.Config, asJSON bool, stdout io.Writer) error {
	c := &consoleClient{load: func() (hub.Config, error) { return cfg, nil }, stdout: stdout}
	st, err := c.status(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		b, err := json.MarshalIndent(st, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%s\n", b)
		return err
	}
	return printHubStatus(stdout, st)
}

// target is the console's base URL, its token and the TLS settings to
// reach it.
func (c *consoleClient) target() (base, token string, tlsConf *tls.Config, err error) {
	cfg, err := c.load()
	if err != nil {
		return "", "", nil, err
	}
	d := cfg.Dashboard
	base = strings.TrimSuffix(c.url, "/")
	if base == "" {
		if d.Listen == hub.Off {
			return "", "", nil, errors.New("dashboard.listen is off: the running hub serves no status (turn it on; dashboard url also takes --url)")
		}
		scheme := "http"
		if d.TLS != nil {
			scheme = "https"
		}
		base = hub.ConsoleBaseURL(scheme, d.Listen)
		if strings.HasSuffix(base, ":0") {
			return "", "", nil, fmt.Errorf("dashboard.listen %s has no fixed port: the running hub cannot be found from the configuration (dashboard url also takes --url)", d.Listen)
		}
	}
	token, err = hub.ReadDashboardToken(d.TokenFile)
	if errors.Is(err, fs.ErrPermission) {
		err = fmt.Errorf("%w (run as the hub's user, e.g. sudo -u canopy)", err)
	}
	if errors.Is(err, fs.ErrNotExist) {
		err = fmt.Errorf("%w (the hub makes it when it first starts)", err)
	}
	if err != nil {
		return "", "", nil, err
	}
	ca := c.caFile
	if ca == "" && d.TLS != nil {
		ca = d.TLS.CAFile
	}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return "", "", nil, fmt.Errorf("CA file: %w", err)
		}
		tlsConf = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: x509.NewCertPool()}
		if !tlsConf.RootCAs.AppendCertsFromPEM(pem) {
			return "", "", nil, fmt.Errorf("CA file %s: no PEM certificate in it", ca)
		}
	}
	return base, token, tlsConf, nil
}

// status fetches /api/status.
func (c *consoleClient) status(ctx context.Context) (hub.ConsoleStatus, error) {
	var st hub.ConsoleStatus
	base, token, tlsConf, err := c.target()
	if err != nil {
		return st, err
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+hub.ConsoleStatusPath, nil)
	if err != nil {
		return st, fmt.Errorf("console URL %q: %w", base, err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConf, Proxy: http.ProxyFromEnvironment}}
	resp, err := client.Do(req)
	if err != nil {
		// The dial's error says it all; the request is ours.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return st, fmt.Errorf("no running hub answers at %s (dashboard.listen): %w", base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return st, fmt.Errorf("read %s: %w", base, err)
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return st, fmt.Errorf("the hub at %s refused the token of dashboard.token_file: is it this hub's?", base)
	case resp.StatusCode != http.StatusOK:
		return st, fmt.Errorf("the hub at %s answered %s: %s", base, resp.Status, strings.TrimSpace(string(body)))
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return st, fmt.Errorf("the hub at %s answered with an unexpected document: %w", base, err)
	}
	return st, nil
}

func printHubStatus(w io.Writer, st hub.ConsoleStatus) error {
	s := st.Server
	fmt.Fprintf(w, "hub %s: canopy %s, nats-server %s, up %s\n", s.Name, s.Version, s.NATSVersion,
		(time.Duration(s.UptimeSeconds) * time.Second).String())
	cluster := "not clustered"
	if s.Cluster != "" {
		cluster = fmt.Sprintf("cluster %s: %d node%s, %d route%s", s.Cluster, s.ClusterSize, plural(s.ClusterSize), s.Routes, plural(s.Routes))
	}
	fmt.Fprintf(w, "%s; gateways %d; leafnodes %d; clients %d\n", cluster, s.Gateways, s.LeafNodes, s.Clients)
	if js := st.JetStream; js.Enabled {
		fmt.Fprintf(w, "jetstream: storage %s of %s, memory %s of %s; %d streams, %d consumers, %d messages\n",
			humanBytes(int64(js.StorageUsed)), humanLimit(js.StorageMax), humanBytes(int64(js.MemoryUsed)), humanLimit(js.MemoryMax),
			js.Streams, js.Consumers, js.Messages)
	} else {
		fmt.Fprintln(w, "jetstream: off")
	}
	if !s.OperatorMode {
		fmt.Fprintln(w, "tenants: none (operator mode is off)")
		return nil
	}
	if len(st.Tenants) == 0 {
		fmt.Fprintln(w, "tenants: none yet (canopy-hub tenant add)")
		return nil
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TENANT\tONLINE\tBACKLOG\tRUNNING ROLLOUTS")
	var rollouts []string
	for _, t := range st.Tenants {
		fmt.Fprintf(tw, "%s\t%d/%d\t%d msgs, %s\t%d\n", t.Name, t.Online, t.Devices, t.BacklogMsgs, humanBytes(int64(t.BacklogBytes)), len(t.Rollouts))
		for _, r := range t.Rollouts {
			rollouts = append(rollouts, fmt.Sprintf("  %s %s: %s %s, %d/%d applied, %d failed, %d in progress, %d pending",
				t.Name, r.ID, r.Firmware, r.Version, r.Applied, r.Devices, r.Failed, r.InProgress, r.Pending))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(rollouts) > 0 {
		fmt.Fprintln(w, "\nrollouts running:")
		for _, r := range rollouts {
			fmt.Fprintln(w, r)
		}
	}
	return nil
}

// humanBytes writes n in the largest binary unit that keeps it at 1 or
// more, with one decimal.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n), 0
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB"}
	for v /= unit; v >= unit && i < len(units)-1; i++ {
		v /= unit
	}
	return fmt.Sprintf("%.1f %s", v, units[i])
}

func humanLimit(n int64) string {
	if n <= 0 {
		return "unlimited"
	}
	return humanBytes(n)
}
