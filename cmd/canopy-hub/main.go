// Command canopy-hub runs Canopy's datacenter node: an embedded nats-server
// with clustering, gateways, JetStream and a leafnode listener for devices.
//
// The command line, signals and exit status are appliance's; see
// hubapp.Program. Exit status: 0 after a clean shutdown, 1 on a runtime
// failure, 2 on a bad configuration or command line.
package main

import (
	"context"
	"io"
	"os"

	"github.com/canopy-iot/canopy/appliance"
	"github.com/canopy-iot/canopy/appliance/hubapp"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return appliance.Main(ctx, hubapp.Program, args, stdout, stderr)
}
