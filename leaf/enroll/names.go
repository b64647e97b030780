package enroll

import "time"

// Path is the enrollment endpoint, under the hub URL.
const Path = "/v1/enroll"

// CredsFile is the name of the credentials file in the leaf's data_dir
// when no other path is given.
const CredsFile = "device.creds"

// Timeout bounds one enrollment, connecting included.
const Timeout = 30 * time.Second

// maxAnswer bounds the hub's answer: a JWT and a few names are a few KiB.
const maxAnswer = 1 << 20
