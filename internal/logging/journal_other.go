//go:build !unix

package logging

import "os"

// fileID: there is no journal here.
func fileID(*os.File) (string, bool) { return "", false }
