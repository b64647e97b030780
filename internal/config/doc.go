// Package config loads Canopy's versioned YAML configuration files.
//
// Both binaries share one loader so their files read and fail the same way:
// a required `version:` key, strict decoding in which an unknown key is an
// error naming the key and its line, command-line flags that override file
// values by YAML path, and every problem reported at once. Validation errors
// produced later by the owner of a configuration struct are placed back at
// the file line or flag that set the offending value.
//
// It is imported by appliance and by the packages that own a configuration
// struct (for the Duration and Size value types); it imports only the YAML
// library.
package config
