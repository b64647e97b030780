package hubapp

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/canopy-iot/canopy/hub/pki"
)

// DefaultTLSDir is where `canopy-hub tls` keeps the fleet CA and the
// certificates when run as root. The packaged hub.yaml names the files of
// hubCert in it, and the package's first install makes them there.
const DefaultTLSDir = "/etc/canopy/tls"

// defaultUserTLSDir is the certificate directory for anyone but root, who
// cannot write to /etc.
const defaultUserTLSDir = "./canopy-tls"

// hubCert names the certificate `tls init` makes for the hub it runs on:
// hub.pem and hub-key.pem, the files the packaged hub.yaml names.
const hubCert = "hub"

// Validity defaults, in days. The CA outlives several rounds of the
// certificates it signs; those are rotated with `tls issue --force`.
const (
	defaultCADays   = 3650
	defaultCertDays = 825
)

// tlsCommand is `canopy-hub tls`: a fleet CA and the certificates of hub
// nodes and devices. It needs no configuration: the certificates are
// made before hub.yaml can name them.
func tlsCommand(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tls",
		Short: "Make a fleet CA and issue certificates for hub nodes and devices",
		Long: `Make a fleet CA and issue certificates for hub nodes and devices.

A fleet without a PKI of its own runs 'canopy-hub tls init' once, on the
first hub, and 'canopy-hub tls issue' for every other hub node and, where
devices present client certificates, for devices. Existing PKI needs none
of this: point the tls settings of hub.yaml at its files (docs/tls.md).`,
	}
	cmd.AddCommand(tlsInit(stdout, stderr), tlsIssue(stdout))
	return cmd
}

func tlsInit(stdout, stderr io.Writer) *cobra.Command {
	var dir, name string
	var hosts []string
	days, caDays := defaultCertDays, defaultCADays
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Make the fleet CA and this hub's certificate (hub.pem, for server and client use)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir = certDir(dir)
			if days <= 0 || caDays <= 0 {
				return errors.New("--days and --ca-days must be positive")
			}
			if !cmd.Flags().Changed("host") {
				hosts = defaultHosts(stderr)
			}
			if err := pki.CheckHosts(hosts); err != nil {
				return fmt.Errorf("--host: %w", err)
			}
			// Refuse before making anything, so that a leftover hub
			// certificate does not leave a CA behind without one.
			for _, f := range []string{pki.CAFile, pki.CAKeyFile, pki.CertFile(hubCert), pki.KeyFile(hubCert)} {
				path := filepath.Join(dir, f)
				if _, err := os.Lstat(path); err == nil {
					if f == pki.CAFile || f == pki.CAKeyFile {
						return fmt.Errorf("%s already exists: a fleet CA is in place; issue certificates with canopy-hub tls issue", path)
					}
					return fmt.Errorf("%s already exists: replace it with canopy-hub tls issue %s --force", path, hubCert)
				}
			}
			if err := pki.InitCA(dir, name, daysOf(caDays)); err != nil {
				return err
			}
			if err := pki.Issue(dir, hubCert, hosts, daysOf(days), pki.Both, false); err != nil {
				return fmt.Errorf("made the fleet CA in %s, but not this hub's certificate: %w\nfinish with: canopy-hub tls issue %s --dir %s --host %s",
					dir, err, hubCert, dir, strings.Join(hosts, " --host "))
			}
			abs := absDir(dir)
			fmt.Fprintf(stdout, "made in %s:\n", abs)
			fmt.Fprintf(stdout, "  %-12s the fleet CA: every hub node and device trusts it (ca_file)\n", pki.CAFile)
			fmt.Fprintf(stdout, "  %-12s the CA's key: it signs every certificate; back it up and keep it root-only, or offline\n", pki.CAKeyFile)
			fmt.Fprintf(stdout, "  %-12s this hub's certificate (server and client) for %s%s\n", pki.CertFile(hubCert), strings.Join(hosts, ", "), validUntil(filepath.Join(dir, pki.CertFile(hubCert))))
			fmt.Fprintf(stdout, "  %-12s its key\n\n", pki.KeyFile(hubCert))
			if abs == DefaultTLSDir {
				fmt.Fprintf(stdout, "the packaged hub.yaml names these files already:\n\n")
			} else {
				fmt.Fprintf(stdout, "use them in hub.yaml:\n\n")
			}
			fmt.Fprint(stdout, hubYAMLSnippet(abs))
			fmt.Fprintf(stdout, "\nmore hub nodes: canopy-hub tls issue NAME --host NAME.example.com; devices: canopy-hub tls issue NAME --client\n")
			if os.Geteuid() == 0 {
				fmt.Fprintf(stderr, "the hub service runs as user canopy: let it read the certificates and its key (not the CA's):\n"+
					"  chgrp canopy %[1]s %[1]s/%[2]s %[1]s/%[3]s %[1]s/%[4]s && chmod 0750 %[1]s && chmod 0640 %[1]s/%[4]s\n",
					abs, pki.CAFile, pki.CertFile(hubCert), pki.KeyFile(hubCert))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "certificate directory (default "+DefaultTLSDir+" as root, else "+defaultUserTLSDir+")")
	f.StringVar(&name, "name", "", "fleet or organisation name, for the CA's common name \"NAME Canopy fleet CA\"")
	f.StringSliceVar(&hosts, "host", nil, "DNS name or IP address devices and other nodes dial this hub by; repeat for more (default: the host name, localhost, 127.0.0.1)")
	f.IntVar(&days, "days", days, "validity of the hub's certificate, in days")
	f.IntVar(&caDays, "ca-days", caDays, "validity of the CA, in days")
	return cmd
}

func tlsIssue(stdout io.Writer) *cobra.Command {
	var dir string
	var hosts []string
	var client, force bool
	days := defaultCertDays
	cmd := &cobra.Command{
		Use:   "issue NAME",
		Short: "Issue a certificate signed by the fleet CA: another hub node's (server and client), or with --client a device's",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			name := args[0]
			dir = certDir(dir)
			if days <= 0 {
				return errors.New("--days must be positive")
			}
			usage := pki.Both
			if client {
				usage = pki.Client
			} else if len(hosts) == 0 {
				return errors.New("a hub node's certificate needs --host: the DNS names and IP addresses devices and other nodes dial it by (--client for a device's)")
			}
			err := pki.Issue(dir, name, hosts, daysOf(days), usage, force)
			switch {
			case errors.Is(err, pki.ErrExists):
				return fmt.Errorf("%w: --force replaces it", err)
			case errors.Is(err, pki.ErrNoCA):
				return fmt.Errorf("%w: make one with canopy-hub tls init --dir %s, or put an existing CA's %s and %s there", err, dir, pki.CAFile, pki.CAKeyFile)
			case err != nil:
				return err
			}
			abs := absDir(dir)
			cert, key := pki.CertFile(name), pki.KeyFile(name)
			names := "for " + strings.Join(hosts, ", ")
			if len(hosts) == 0 {
				names = "no host names"
			}
			fmt.Fprintf(stdout, "issued in %s: %s (%s; %s%s) and %s\n", abs, cert, usage, names, validUntil(filepath.Join(dir, cert)), key)
			if client {
				fmt.Fprintf(stdout, "copy %s, %s and %s to the device (the key readable by the canopy group only) and set in leaf.yaml:\n\n", pki.CAFile, cert, key)
				fmt.Fprintf(stdout, "uplink:\n  tls:\n    ca_file: %[1]s/%[2]s\n    cert_file: %[1]s/%[3]s\n    key_file: %[1]s/%[4]s\n", DefaultTLSDir, pki.CAFile, cert, key)
				return nil
			}
			fmt.Fprintf(stdout, "copy %s, %s and %s to the node's %s, naming the last two %s and %s there (as its packaged hub.yaml does),\n"+
				"readable by the canopy group; do not copy %s\n",
				pki.CAFile, cert, key, DefaultTLSDir, pki.CertFile(hubCert), pki.KeyFile(hubCert), pki.CAKeyFile)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "certificate directory holding the fleet CA (default "+DefaultTLSDir+" as root, else "+defaultUserTLSDir+")")
	f.StringSliceVar(&hosts, "host", nil, "DNS name or IP address the node is dialled by; repeat for more (required for a hub node)")
	f.BoolVar(&client, "client", false, "a device's client certificate (default: a hub node's, server and client)")
	f.IntVar(&days, "days", days, "validity in days (at most until the CA expires)")
	f.BoolVar(&force, "force", false, "replace an existing certificate and key of that name (to rotate them)")
	return cmd
}

// hubYAMLSnippet is the hub.yaml that puts the certificates in dir on
// every listener: routes and gateways verify each other (mutual TLS),
// clients and devices authenticate with their credentials.
func hubYAMLSnippet(dir string) string {
	files := fmt.Sprintf("cert_file: %[1]s/%[2]s, key_file: %[1]s/%[3]s, ca_file: %[1]s/%[4]s",
		dir, pki.CertFile(hubCert), pki.KeyFile(hubCert), pki.CAFile)
	return fmt.Sprintf(`tls: {%[1]s}
leafnodes:
  tls: {%[1]s}
cluster:      # when clustered
  tls: {%[1]s, verify: true}
gateways:     # when joined to a supercluster
  tls: {%[1]s, verify: true}
`, files)
}

// certDir is the certificate directory named by --dir, or the default.
func certDir(dir string) string {
	switch {
	case dir != "":
		return dir
	case os.Geteuid() == 0:
		return DefaultTLSDir
	}
	return defaultUserTLSDir
}

// defaultHosts are what this hub is dialled by unless --host says
// otherwise: its host name, and loopback for local clients.
func defaultHosts(stderr io.Writer) []string {
	hosts := []string{"localhost", "127.0.0.1"}
	name, err := os.Hostname()
	switch {
	case err != nil:
		fmt.Fprintf(stderr, "host name unknown (%v): the certificate names localhost and 127.0.0.1 only; use --host\n", err)
	case name == "" || name == "localhost":
	case pki.CheckHosts([]string{name}) != nil:
		fmt.Fprintf(stderr, "host name %q is no DNS name: left out of the certificate; use --host\n", name)
	default:
		hosts = append([]string{name}, hosts...)
	}
	return hosts
}

func daysOf(n int) time.Duration { return time.Duration(n) * 24 * time.Hour }

func absDir(dir string) string {
	if abs, err := filepath.Abs(dir); err == nil {
		return abs
	}
	return dir
}

// validUntil describes a certificate's expiry for the output, "" when it
// cannot be read.
func validUntil(path string) string {
	c, err := pki.ReadCertificate(path)
	if err != nil {
		return ""
	}
	return ", valid until " + c.NotAfter.UTC().Format(time.DateOnly)
}
