//go:build !unix

package pki

import (
	"io/fs"
	"os"
)

// keepOwner does nothing: ownership is not a file mode here.
func keepOwner(*os.File, fs.FileInfo) error { return nil }

// syncDir does nothing: directories cannot be synced here.
func syncDir(string) error { return nil }
