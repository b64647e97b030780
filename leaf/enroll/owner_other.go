//go:build !unix

package enroll

import "os"

// giveToDirOwner is a no-op where files have no Unix owner.
func giveToDirOwner(*os.File, string) error { return nil }

// syncDir is a no-op where directories cannot be synced (Windows).
func syncDir(string) error { return nil }
