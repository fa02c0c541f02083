// Package buildinfo says which build of iptscope is running: the module
// version when installed with `go install ...@vX`, else the VCS revision
// the binary was built from, else "devel". It is pure (debug.ReadBuildInfo
// reads the running binary's own metadata) and safe to call anywhere.
package buildinfo

import (
	"runtime/debug"
	"sync"
)

// Info describes the running build. JSON field names are stable.
type Info struct {
	// Version is the module version ("v1.2.3"), "devel" for a local
	// build, or "devel+REV" (12 hex digits, "-dirty" when the tree had
	// uncommitted changes) when VCS information was stamped.
	Version string `json:"version"`
	// Revision and Time are the VCS revision and commit time ("" when
	// not stamped).
	Revision string `json:"revision,omitempty"`
	Time     string `json:"time,omitempty"`
	Modified bool   `json:"modified,omitempty"`
	// GoVersion is the toolchain that built the binary.
	GoVersion string `json:"go_version"`
}

var (
	once sync.Once
	info Info
)

// Get returns the running build's Info (computed once).
func Get() Info {
	once.Do(func() { info = read() })
	return info
}

// Version is Get().Version.
func Version() string { return Get().Version }

func read() Info {
	i := Info{Version: "devel"}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return i
	}
	i.GoVersion = bi.GoVersion
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		i.Version = v
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			i.Revision = s.Value
		case "vcs.time":
			i.Time = s.Value
		case "vcs.modified":
			i.Modified = s.Value == "true"
		}
	}
	if i.Version == "devel" && i.Revision != "" {
		rev := i.Revision
		if len(rev) > 12 {
			rev = rev[:12]
		}
		i.Version += "+" + rev
		if i.Modified {
			i.Version += "-dirty"
		}
	}
	return i
}
