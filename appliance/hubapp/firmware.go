package hubapp

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/canopy-iot/canopy/firmware"
	"github.com/canopy-iot/canopy/hub"
)

// firmwareCommand is `canopy-hub firmware`: publish and list artifacts,
// plus the rollout commands (rolloutCommands).
func (p *provisioning) firmwareCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "firmware", Short: "Publish firmware, roll it out to devices and follow the rollouts"}
	cmd.AddCommand(p.firmwarePublish(), p.firmwareList())
	cmd.AddCommand(p.rolloutCommands()...)
	return cmd
}

func (p *provisioning) firmwarePublish() *cobra.Command {
	var (
		tenant, file string
		meta         hub.FirmwareMeta
		chunkSize    = sizeFlag(firmware.DefaultChunkSize)
	)
	cmd := &cobra.Command{
		Use:   "publish --tenant T --name N --version V --platform OS/ARCH --file F",
		Short: "Upload a firmware artifact to a tenant's firmware bucket and sign its manifest",
		Long: `Upload a firmware artifact to the tenant's "firmware" Object Store on the
running hub, in chunks, and store its manifest (sizes and SHA-256 digests
of the artifact and of every chunk) signed with the tenant's firmware key.
Publishing the same name, version and platform again replaces both.`,
		// The flags are checked with the arguments: appliance.Main reports
		// what fails before a command starts as a usage error (exit
		// status 2), and nothing is uploaded on a bad command line.
		Args: func(cmd *cobra.Command, args []string) error {
			if err := cobra.NoArgs(cmd, args); err != nil {
				return err
			}
			var problems []string
			for _, f := range []struct{ flag, value, help string }{
				{"tenant", tenant, "the tenant whose devices get the firmware"},
				{"name", meta.Name, "the firmware's name, e.g. sensor-fw"},
				{"version", meta.Version, "e.g. 1.4.0"},
				{"platform", meta.Platform, `GOOS/GOARCH of the devices, e.g. linux/arm64, or "any"`},
				{"file", file, "the artifact to publish"},
			} {
				if f.value == "" {
					problems = append(problems, fmt.Sprintf("--%s is required: %s", f.flag, f.help))
				}
			}
			for _, err := range []error{
				checkFirmwareFlag("name", meta.Name, func(s string) error { return firmware.CheckName("name", s) }),
				checkFirmwareFlag("version", meta.Version, func(s string) error { return firmware.CheckName("version", s) }),
				checkFirmwareFlag("platform", meta.Platform, firmware.CheckPlatform),
			} {
				if err != nil {
					problems = append(problems, err.Error())
				}
			}
			if err := firmware.CheckChunkSize(int(chunkSize)); err != nil {
				problems = append(problems, fmt.Sprintf("--chunk-size is %d bytes: want 4KiB to 8MiB, within the hub's max_payload", int64(chunkSize)))
			}
			if file != "" {
				if fi, err := os.Stat(file); err != nil {
					problems = append(problems, fmt.Sprintf("--file: %v", err))
				} else if !fi.Mode().IsRegular() {
					problems = append(problems, fmt.Sprintf("--file %s: not a regular file", file))
				}
			}
			if len(problems) > 0 {
				return errors.New(strings.Join(problems, "; "))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := os.Open(file)
			if err != nil {
				return fmt.Errorf("firmware file: %w", err)
			}
			defer f.Close()
			keys, cfg, done, err := p.keys()
			if err != nil {
				return err
			}
			defer done()
			admin, err := p.admin(cfg, keys)
			if err != nil {
				return err
			}
			meta.ChunkSize = int(chunkSize)
			m, err := admin.PublishFirmware(cmd.Context(), tenant, meta, f)
			if err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			w := tabwriter.NewWriter(p.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintf(w, "tenant\t%s\n", tenant)
			fmt.Fprintf(w, "name\t%s\n", m.Name)
			fmt.Fprintf(w, "version\t%s\n", m.Version)
			fmt.Fprintf(w, "platform\t%s\n", m.Platform)
			fmt.Fprintf(w, "size\t%d bytes (%s)\n", m.Size, firmwareSize(m.Size))
			fmt.Fprintf(w, "chunks\t%d of %s\n", len(m.Chunks), firmwareSize(int64(m.ChunkSize)))
			fmt.Fprintf(w, "sha256\t%s\n", m.SHA256)
			fmt.Fprintf(w, "object\t%s (bucket %s, manifest %s)\n", m.Object, firmware.Bucket, m.Object+firmware.ManifestSuffix)
			return w.Flush()
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&tenant, "tenant", "", "tenant to publish to (required)")
	fl.StringVar(&meta.Name, "name", "", "firmware name, e.g. sensor-fw (required)")
	fl.StringVar(&meta.Version, "version", "", "firmware version, e.g. 1.4.0 (required)")
	fl.StringVar(&meta.Platform, "platform", "", `device platform GOOS/GOARCH, e.g. linux/arm64, or "any" (required)`)
	fl.StringVar(&file, "file", "", "the artifact file (required)")
	fl.StringVar(&meta.Notes, "notes", "", "release notes, signed with the manifest")
	fl.Var(&chunkSize, "chunk-size", "chunk size, 4KiB to 8MiB, within the hub's max_payload (1MiB by default)")
	return cmd
}

// checkFirmwareFlag runs a firmware name check on a flag's value when it
// was given (a missing flag is reported once, as missing).
func checkFirmwareFlag(flag, value string, f func(string) error) error {
	if value == "" {
		return nil
	}
	if err := f(value); err != nil {
		return fmt.Errorf("--%s: %w", flag, err)
	}
	return nil
}

func (p *provisioning) firmwareList() *cobra.Command {
	var tenant string
	cmd := &cobra.Command{
		Use:   "list --tenant T",
		Short: "List the firmware published to a tenant, with verified manifests",
		Args: func(cmd *cobra.Command, args []string) error {
			if err := cobra.NoArgs(cmd, args); err != nil {
				return err
			}
			if tenant == "" {
				return errors.New("--tenant is required: the tenant whose firmware to list")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			keys, cfg, done, err := p.keys()
			if err != nil {
				return err
			}
			defer done()
			admin, err := p.admin(cfg, keys)
			if err != nil {
				return err
			}
			list, err := admin.FirmwareList(cmd.Context(), tenant)
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(p.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tVERSION\tPLATFORM\tSIZE\tCHUNKS\tCREATED\tSHA256")
			for _, m := range list {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", m.Name, m.Version, m.Platform, firmwareSize(m.Size),
					len(m.Chunks), m.Created.UTC().Format(time.RFC3339), m.SHA256[:12])
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&tenant, "tenant", "", "tenant whose firmware to list (required)")
	return cmd
}

// firmwareSize writes n bytes for people: "812B", "1.5MiB", "3MiB".
func firmwareSize(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%dB", n)
	}
	units := []string{"KiB", "MiB", "GiB", "TiB"}
	v := float64(n) / 1024
	i := 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	if v == float64(int64(v)) {
		return fmt.Sprintf("%d%s", int64(v), units[i])
	}
	return fmt.Sprintf("%.1f%s", v, units[i])
}
