package hubapp

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/canopy-iot/canopy/firmware"
	"github.com/canopy-iot/canopy/hub"
)

// rolloutCommands are `canopy-hub firmware rollout|status|cancel|group`.
// They write and read the tenant's "fw-rollouts" bucket; the hub's rollout
// controller does the rollout itself.
func (p *provisioning) rolloutCommands() []*cobra.Command {
	group := &cobra.Command{
		Use:   "group",
		Short: "Define device groups, for rollouts to group=<group>",
	}
	group.AddCommand(p.groupSet(), p.groupList())
	return []*cobra.Command{p.rolloutCmd(), p.rolloutStatus(), p.rolloutCancel(), group}
}

// tenantFlag adds the required --tenant flag.
func tenantFlag(cmd *cobra.Command, tenant *string) {
	cmd.Flags().StringVar(tenant, "tenant", "", "the tenant (required)")
	_ = cmd.MarkFlagRequired("tenant")
}

// adminFor opens the key directory and prepares the connection to the hub;
// done closes the key directory's log.
func (p *provisioning) adminFor() (*hub.Admin, func(), error) {
	keys, cfg, done, err := p.keys()
	if err != nil {
		return nil, nil, err
	}
	admin, err := p.admin(cfg, keys)
	if err != nil {
		done()
		return nil, nil, err
	}
	return admin, done, nil
}

func (p *provisioning) rolloutCmd() *cobra.Command {
	var tenant, name, version, platform string
	spec := hub.RolloutSpec{Percent: 100, Threshold: hub.DefaultRolloutThreshold}
	cmd := &cobra.Command{
		Use:   "rollout --tenant T --name N --version V --to all|group=G|device=D",
		Short: "Start a staged rollout of published firmware; the hub assigns the waves and halts on failures",
		Long: `Start a staged rollout of published firmware.

The target is resolved now (revoked devices left out) and shuffled; the hub
gives the first wave (--percent of the devices) the new firmware at once,
and each next wave once every device of the earlier ones has applied it
(or staged it, with --download-only) or failed, and --wave-interval has
passed. The rollout halts as soon as the failed or rolled-back devices are
more than --threshold percent of those assigned so far. Follow it with
'canopy-hub firmware status'.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// The document's 0 means 100; on the command line it is a typo.
			if spec.Percent < 1 || spec.Percent > 100 {
				return fmt.Errorf("--percent %d: want 1 to 100", spec.Percent)
			}
			admin, done, err := p.adminFor()
			if err != nil {
				return err
			}
			defer done()
			ctx := cmd.Context()
			if platform == "" {
				if platform, err = onlyPlatform(ctx, admin, tenant, name, version); err != nil {
					return err
				}
			}
			if spec.Manifest, _, err = admin.FirmwareManifest(ctx, tenant, name, version, platform); err != nil {
				return err
			}
			r, err := admin.CreateRollout(ctx, tenant, spec)
			if err != nil {
				return err
			}
			first := min(r.WaveSize(), len(r.Devices))
			fmt.Fprintf(p.stdout, "rollout %s: %s %s (%s) to %d device%s (%s)\n", r.ID, r.Name, r.Version, r.Platform, len(r.Devices), plural(len(r.Devices)), r.Target)
			fmt.Fprintf(p.stdout, "first wave: %d device%s; follow it with: canopy-hub firmware status --tenant %s --rollout %s\n", first, plural(first), tenant, r.ID)
			return nil
		},
	}
	tenantFlag(cmd, &tenant)
	f := cmd.Flags()
	f.StringVar(&name, "name", "", "firmware name (required)")
	f.StringVar(&version, "version", "", "firmware version (required)")
	f.StringVar(&platform, "platform", "", "firmware platform, e.g. linux/arm64 (default: the only one published for the name and version)")
	f.StringVar(&spec.Target, "to", "", "target: all, group=<group> or device=<device> (required)")
	f.IntVar(&spec.Percent, "percent", spec.Percent, "wave size in percent of the target's devices, 1 to 100")
	f.DurationVar(&spec.WaveInterval, "wave-interval", 0, "least time between the starts of two waves, e.g. 30m")
	f.IntVar(&spec.Threshold, "threshold", spec.Threshold, "halt when more than this percent of the assigned devices failed, 0 to 100")
	f.StringVar(&spec.Window, "window", "", "daily maintenance window in device local time, HH:MM-HH:MM (default: any time)")
	f.BoolVar(&spec.DownloadOnly, "download-only", false, "devices download and stage the firmware without applying it")
	for _, req := range []string{"name", "version", "to"} {
		_ = cmd.MarkFlagRequired(req)
	}
	return cmd
}

// onlyPlatform is the platform of the one published manifest of name and
// version.
func onlyPlatform(ctx context.Context, admin *hub.Admin, tenant, name, version string) (string, error) {
	list, err := admin.FirmwareList(ctx, tenant)
	if err != nil {
		return "", err
	}
	var platforms []string
	for _, m := range list {
		if m.Name == name && m.Version == version {
			platforms = append(platforms, m.Platform)
		}
	}
	switch len(platforms) {
	case 0:
		return "", fmt.Errorf("tenant %s: firmware %s %s: %w", tenant, name, version, hub.ErrNoFirmware)
	case 1:
		return platforms[0], nil
	}
	return "", fmt.Errorf("tenant %s: firmware %s %s is published for %s: choose one with --platform", tenant, name, version, strings.Join(platforms, ", "))
}

func (p *provisioning) rolloutStatus() *cobra.Command {
	var tenant, id string
	cmd := &cobra.Command{
		Use:   "status --tenant T [--rollout ID]",
		Short: "Show rollouts with their progress and the devices' firmware state",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			admin, done, err := p.adminFor()
			if err != nil {
				return err
			}
			defer done()
			ctx := cmd.Context()
			rollouts, err := admin.Rollouts(ctx, tenant)
			if err != nil {
				return err
			}
			statuses, err := admin.FirmwareStatuses(ctx, tenant)
			if err != nil {
				return err
			}
			if id != "" {
				i := slices.IndexFunc(rollouts, func(r hub.Rollout) bool { return r.ID == id })
				if i < 0 {
					return fmt.Errorf("tenant %s: rollout %s: %w", tenant, id, hub.ErrNoRollout)
				}
				rollouts = rollouts[i : i+1]
			}
			if err := p.printRollouts(rollouts, statuses); err != nil {
				return err
			}
			fmt.Fprintln(p.stdout)
			if id != "" {
				return p.printRolloutDevices(rollouts[0], statuses)
			}
			return p.printStatuses(statuses)
		},
	}
	tenantFlag(cmd, &tenant)
	cmd.Flags().StringVar(&id, "rollout", "", "show this rollout only, with each of its devices")
	return cmd
}

func (p *provisioning) printRollouts(rollouts []hub.Rollout, statuses map[string]firmware.Status) error {
	w := tabwriter.NewWriter(p.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ROLLOUT\tFIRMWARE\tTARGET\tSTATE\tWAVES\tASSIGNED\tAPPLIED\tFAILED\tIN FLIGHT\tCREATED\tREASON")
	for _, r := range rollouts {
		pr := r.Progress(statuses)
		fmt.Fprintf(w, "%s\t%s %s %s\t%s\t%s\t%d\t%d/%d\t%d\t%d\t%d\t%s\t%s\n", r.ID, r.Name, r.Version, r.Platform, r.Target,
			r.State, r.Waves, pr.Assigned, pr.Total, pr.Succeeded, pr.Failed, pr.InFlight(), stamp(r.Created), dash(r.Reason))
	}
	return w.Flush()
}

// printRolloutDevices lists a rollout's devices in rollout order: queued
// ones, assigned ones that have not reported on it yet, and the others
// with their report.
func (p *provisioning) printRolloutDevices(r hub.Rollout, statuses map[string]firmware.Status) error {
	w := tabwriter.NewWriter(p.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "DEVICE\tSTATE\tPROGRESS\tVERSION\tRUNNING\tREASON\tUPDATED")
	for _, d := range r.Devices {
		st, ok := statuses[d]
		switch {
		case !slices.Contains(r.Assigned, d):
			fmt.Fprintf(w, "%s\tqueued\t-\t-\t%s\t-\t-\n", d, dash(runningOf(st, ok)))
		case !ok || st.Rollout != r.ID:
			fmt.Fprintf(w, "%s\tassigned\t-\t-\t%s\t-\t-\n", d, dash(runningOf(st, ok)))
		default:
			printStatus(w, d, st)
		}
	}
	return w.Flush()
}

func runningOf(st firmware.Status, ok bool) string {
	if !ok {
		return ""
	}
	return st.Running
}

// printStatuses lists every device's latest report, by name.
func (p *provisioning) printStatuses(statuses map[string]firmware.Status) error {
	w := tabwriter.NewWriter(p.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "DEVICE\tSTATE\tPROGRESS\tVERSION\tRUNNING\tREASON\tUPDATED")
	names := make([]string, 0, len(statuses))
	for d := range statuses {
		names = append(names, d)
	}
	sort.Strings(names)
	for _, d := range names {
		printStatus(w, d, statuses[d])
	}
	return w.Flush()
}

func printStatus(w *tabwriter.Writer, device string, st firmware.Status) {
	version := st.Version
	if st.Name != "" && version != "" {
		version = st.Name + " " + version
	}
	fmt.Fprintf(w, "%s\t%s\t%d%%\t%s\t%s\t%s\t%s\n", device, dash(string(st.State)), st.Progress, dash(version),
		dash(st.Running), dash(oneLine(st.Reason)), stamp(st.Updated))
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// oneLine keeps a device's reason (the device's own text) on its row.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 120 {
		s = s[:120] + "..."
	}
	return s
}

func (p *provisioning) rolloutCancel() *cobra.Command {
	var tenant, reason string
	cmd := &cobra.Command{
		Use:   "cancel --tenant T ROLLOUT",
		Short: "Cancel a rollout: no more devices get it; those that have it keep it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			admin, done, err := p.adminFor()
			if err != nil {
				return err
			}
			defer done()
			r, err := admin.CancelRollout(cmd.Context(), tenant, args[0], reason)
			if err != nil {
				return err
			}
			fmt.Fprintf(p.stdout, "rollout %s cancelled; %d of %d devices got it and keep it\n", r.ID, len(r.Assigned), len(r.Devices))
			return nil
		},
	}
	tenantFlag(cmd, &tenant)
	cmd.Flags().StringVar(&reason, "reason", "", "why, recorded in the rollout (default: cancelled by the operator)")
	return cmd
}

func (p *provisioning) groupSet() *cobra.Command {
	var tenant string
	cmd := &cobra.Command{
		Use:   "set --tenant T GROUP DEVICE...",
		Short: "Define a device group (replacing its devices); rollouts resolve groups when they start",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			admin, done, err := p.adminFor()
			if err != nil {
				return err
			}
			defer done()
			if err := admin.SetDeviceGroup(cmd.Context(), tenant, args[0], args[1:]); err != nil {
				return err
			}
			fmt.Fprintf(p.stdout, "group %s of tenant %s: %s\n", args[0], tenant, strings.Join(sortedUnique(args[1:]), " "))
			return nil
		},
	}
	tenantFlag(cmd, &tenant)
	return cmd
}

func sortedUnique(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Compact(s)
}

func (p *provisioning) groupList() *cobra.Command {
	var tenant string
	cmd := &cobra.Command{
		Use:   "list --tenant T",
		Short: "List device groups",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			admin, done, err := p.adminFor()
			if err != nil {
				return err
			}
			defer done()
			groups, err := admin.DeviceGroups(cmd.Context(), tenant)
			if err != nil {
				return err
			}
			names := make([]string, 0, len(groups))
			for g := range groups {
				names = append(names, g)
			}
			sort.Strings(names)
			w := tabwriter.NewWriter(p.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "GROUP\tDEVICES")
			for _, g := range names {
				fmt.Fprintf(w, "%s\t%s\n", g, strings.Join(groups[g], " "))
			}
			return w.Flush()
		},
	}
	tenantFlag(cmd, &tenant)
	return cmd
}
