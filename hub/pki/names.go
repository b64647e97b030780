package pki

// File names in a certificate directory. Configuration files name them
// (the packaged hub.yaml names ca.pem, hub.pem and hub-key.pem in
// /etc/canopy/tls), so they are part of the compatibility surface.
const (
	// CAFile is the fleet CA's certificate, the ca_file of every hub and
	// device.
	CAFile = "ca.pem"
	// CAKeyFile is the fleet CA's private key: it signs every certificate.
	CAKeyFile = "ca-key.pem"
)

// CertFile is the file holding name's certificate chain: <name>.pem.
func CertFile(name string) string { return name + ".pem" }

// KeyFile is the file holding name's private key: <name>-key.pem.
func KeyFile(name string) string { return name + "-key.pem" }
