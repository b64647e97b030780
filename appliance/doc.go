// Package appliance is the composition root shared by canopy-hub and
// canopy-leaf: it turns a config path and command-line flags into a checked
// configuration, sets up logging, and runs the parts of a binary until it
// is told to stop, applying reloads in between.
//
// It is imported only by cmd/*; it imports hub (and, for the leaf, leaf)
// and internal helpers.
package appliance
