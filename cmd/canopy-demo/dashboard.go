package main

import (
	"net"

	"github.com/canopy-iot/canopy/hub"
)

// configureDashboard turns the hub's dashboard on at its usual address
// when that is free (a hub may already run on this machine), else on a
// port the kernel chooses. Should the usual address be taken between the
// check and the hub's start, the hub runs without a dashboard rather than
// fail: it treats that address so.
func configureDashboard(cfg *hub.Config) {
	cfg.Dashboard.Listen = "127.0.0.1:0"
	if ln, err := net.Listen("tcp", hub.DefaultDashboardListen); err == nil {
		ln.Close()
		cfg.Dashboard.Listen = hub.DefaultDashboardListen
	}
}

// dashboardURL is the URL that logs a browser in to the dashboard, ""
// when it is off.
func dashboardURL(h *hub.Hub) string { return h.DashboardLoginURL() }
