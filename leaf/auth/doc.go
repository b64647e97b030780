// Package auth authenticates the local NATS clients of canopy-leaf's server
// and enforces their publish and subscribe permissions.
//
// It owns the `authorization` section of leaf.yaml ([Config]), the checks of
// the credentials a client sends in CONNECT ([Authenticator.Authenticate]),
// and the per-connection permission state ([User]). The rules and the wire
// texts are nats-server's (server/auth.go, server/client.go), reimplemented
// so that the leaf never links nats-server:
//
//   - Either a single token, or a list of users, each with a password (plain
//     or bcrypt) or an NKey public key. Not both, as in nats-server.
//   - NKey users sign the nonce of the server's INFO; the server sends a
//     nonce only when [Authenticator.NonceRequired] says so.
//   - Permissions are allow and deny lists of subject filters; deny wins. A
//     wildcard subscription that overlaps a deny entry is accepted and the
//     denied subjects are filtered at delivery ([User.DeliverAllowed]).
//   - allow_responses lets a user publish once to the reply subject of each
//     request delivered to it, for two minutes.
//
// Every authentication failure is an error matching [ErrAuthorization]
// whose text is nats-server's wire text, "Authorization Violation"; the
// server sends err.Error() in its -ERR line and may log the [Failure]
// reason. Neither contains a secret.
//
// It is imported by leaf/natsd (CONNECT, PUB, SUB and delivery) and by the
// code that loads leaf.yaml (for Config). It imports the standard library,
// nkeys, x/crypto/bcrypt, leaf/subject and internal/config, and must never
// import nats-server: it is linked into canopy-leaf.
package auth
