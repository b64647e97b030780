package leafapp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/canopy-iot/canopy/leaf"
	"github.com/canopy-iot/canopy/leaf/enroll"
)

// commands are canopy-leaf's own subcommands.
func commands(load func() (leaf.Config, error), stdout, _ io.Writer) []*cobra.Command {
	return []*cobra.Command{enrollCommand(load, stdout)}
}

// enrollCommand is `canopy-leaf enroll`: the command line over
// leaf/enroll.
func enrollCommand(load func() (leaf.Config, error), stdout io.Writer) *cobra.Command {
	var (
		req   enroll.Request
		creds string
		force bool
	)
	cmd := &cobra.Command{
		Use:   "enroll --hub https://host:port --token TOKEN",
		Short: "Enroll this device with its hub and write its credentials",
		Long: `Enroll this device with its hub: make the device's key on the device,
send its public key with a one-time enrollment token to the hub's
enrollment service, and write the credentials the hub issues (a .creds
file, mode 0600) to --creds, by default device.creds in data_dir. The
device's seed never leaves the device.`,
		// The flags are checked here, with the arguments: appliance.Main
		// reports what fails before a command starts as a usage error
		// (exit status 2), and the token is not spent on a bad command line.
		Args: func(cmd *cobra.Command, args []string) error {
			if err := cobra.NoArgs(cmd, args); err != nil {
				return err
			}
			var problems []string
			if req.Hub == "" {
				problems = append(problems, "--hub is required: the hub's enrollment URL, https://host:port")
			}
			if req.Token == "" {
				problems = append(problems, "--token is required: the device's one-time enrollment token")
			}
			if len(problems) == 0 {
				if err := req.Validate(); err != nil {
					problems = strings.Split(err.Error(), "\n")
				}
			}
			if len(problems) > 0 {
				return errors.New(strings.Join(problems, "; "))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := runEnroll(cmd.Context(), load, req, creds, force, stdout); err != nil {
				return fmt.Errorf("enroll: %w", err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Hub, "hub", "", "the hub's enrollment service, https://host:port")
	f.StringVar(&req.Token, "token", "", "the one-time enrollment token from the hub's operator")
	f.StringVar(&req.CAFile, "ca", "", "PEM file of the CA that signed the hub's certificate, e.g. the fleet CA (default: the system's CAs)")
	f.StringVar(&creds, "creds", "", "where to write the credentials (default <data_dir>/"+enroll.CredsFile+")")
	f.BoolVar(&force, "force", false, "replace existing credentials: enroll again")
	return cmd
}

func runEnroll(ctx context.Context, load func() (leaf.Config, error), req enroll.Request, path string, force bool, stdout io.Writer) error {
	if path == "" {
		cfg, err := load()
		if err != nil {
			return err
		}
		path = filepath.Join(cfg.DataDir, enroll.CredsFile)
	}
	// leaf.yaml must name the file absolutely: the service runs in its
	// own working directory.
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	// Before the token is spent.
	if err := enroll.CheckTarget(path, force); err != nil {
		if errors.Is(err, enroll.ErrEnrolled) {
			return fmt.Errorf("%w; pass --force to enroll again", err)
		}
		return err
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := enroll.Enroll(ctx, req)
	if err != nil {
		var verify *tls.CertificateVerificationError
		if errors.As(err, &verify) && req.CAFile == "" {
			return fmt.Errorf("%w; if the hub's certificate is signed by the fleet's own CA, give its certificate with --ca", err)
		}
		return err
	}
	data, err := res.Creds()
	if err != nil {
		return err
	}
	if err := enroll.WriteCreds(path, data, force); err != nil {
		// The token is spent: say what to do about it.
		return fmt.Errorf("%w (the token is used up: ask the hub's operator for a new one)", err)
	}

	urls := "[" + strings.Join(res.LeafNodeURLs, ", ") + "]"
	if len(res.LeafNodeURLs) == 0 {
		urls += "  # the hub named none: ask its operator for its leafnode URL"
	}
	fmt.Fprintf(stdout, "enrolled as device %s of tenant %s; credentials in %s\n", res.Device, res.Tenant, path)
	fmt.Fprintf(stdout, "add to leaf.yaml:\nuplink:\n  urls: %s\n  credentials: %s\n", urls, path)
	if len(res.FirmwareKeys) > 0 {
		// The keys come over the same verified TLS connection as the
		// credentials: trusting them is trusting this hub.
		fmt.Fprintf(stdout, "firmware:\n  trusted_keys: [%s]\n", strings.Join(res.FirmwareKeys, ", "))
	}
	return nil
}
