// Package fleet owns the operator's key directory: the NATS operator, the
// system account, tenant accounts, device user credentials, firmware signing
// keys and one-time enrollment tokens. It signs JWTs with nkeys; it never
// talks to a server (the hub pushes what it signs).
//
// Only the hub and the hub's command line import it. It depends on the
// standard library, nkeys and jwt alone: never on nats-server or nats.go.
//
// # The key directory
//
//	<dir>/operator.nk              operator identity seed (keep it offline after init)
//	<dir>/operator.jwt             operator JWT: signing key, system account
//	<dir>/operator-signing.nk      signs every account JWT
//	<dir>/enroll.nk                signs enrollment tokens
//	<dir>/accounts/SYS/            the system account: account.nk, account.jwt,
//	                               signing.nk, admin.creds (for pushing account JWTs)
//	<dir>/accounts/<tenant>/       account.nk, account.jwt, signing.nk, firmware.nk,
//	                               devices/<device>.jwt (latest user JWT per device)
//	<dir>/tokens/used/<token-id>   one file per redeemed token: the time of use
//	<dir>/removed/<tenant>-<unix>/ a removed tenant, kept rather than deleted
//
// Directories are 0700 and files 0600; [Open] refuses a directory that group
// or others can read ([CheckPermissions]). Every file is written atomically.
//
// A [Keys] serialises its own changes. Account JWTs are read, changed and
// written back, so two processes revoking devices in the same directory at
// the same moment may lose one of the revocations: run one provisioning
// command at a time. Token redemption is safe across processes (the used
// mark is created exclusively).
//
// Every change is logged at Info as one "provisioning" line with the action,
// tenant, device, who did it (see [Keys.SetActor]) and the public keys and
// token ids involved; never a seed or a token.
package fleet
