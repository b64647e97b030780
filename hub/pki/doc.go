// Package pki makes a small fleet certificate authority and the
// certificates hubs and devices present: enough for a fleet without a PKI
// of its own. Existing PKI plugs in by pointing the tls settings at its
// files instead.
//
// A certificate directory holds the CA (ca.pem, ca-key.pem) and, for each
// name issued, <name>.pem (the certificate followed by the CA's: a chain)
// and <name>-key.pem. Keys are ECDSA P-256 in PKCS#8 PEM, readable by
// their owner only; every file is written atomically. Only the standard
// library's crypto is used.
//
// appliance/hubapp imports it for `canopy-hub tls`; nothing on a device
// needs it.
package pki
