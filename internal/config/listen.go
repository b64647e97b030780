package config

import (
	"fmt"
	"net"
	"strconv"
)

// SplitListen checks a host:port listen address and splits it; port 0
// asks the kernel for a free port.
func SplitListen(addr string) (host string, port int, err error) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("want host:port, got %q", addr)
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 0 || n > 65535 {
		return "", 0, fmt.Errorf("port %q out of range (0-65535)", p)
	}
	return h, n, nil
}
