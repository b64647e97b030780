// Command canopy-leaf runs Canopy on a device: a small NATS server for the
// device's applications that links up to a canopy-hub.
//
// The command line, signals and exit status are appliance's; see
// leafapp.Program. Exit status: 0 after a clean shutdown, 1 on a runtime
// failure, 2 on a bad configuration or command line.
package main

import (
	"context"
	"io"
	"os"

	"github.com/canopy-iot/canopy/appliance"
	"github.com/canopy-iot/canopy/appliance/leafapp"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return appliance.Main(ctx, leafapp.Program, args, stdout, stderr)
}
