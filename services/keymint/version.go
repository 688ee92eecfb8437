package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// version and commit are set at build time (make build:
// -ldflags "-X main.version=... -X main.commit=..."); the build info
// fills in what they leave empty.
var version, commit string

// versionCmd is `keymint version`.
type versionCmd struct{}

func (versionCmd) Run(env *cliEnv) error {
	v, c := version, commit
	if info, ok := debug.ReadBuildInfo(); ok {
		if v == "" {
			v = info.Main.Version
		}
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && c == "" {
				c = s.Value
			}
		}
	}
	if v == "" {
		v = "(devel)"
	}
	if c == "" {
		c = "unknown"
	}
	fmt.Fprintf(env.stdout, "keymint %s\ncommit %s\n%s %s/%s\n", v, c, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}
