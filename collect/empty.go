package collect

import (
	"time"

	"github.com/iptscope/iptscope/snapshot"
)

// emptySnapshot is a snapshot with every part present and empty (not
// nil): what Collect fills, on every platform.
func emptySnapshot() *snapshot.Snapshot {
	return &snapshot.Snapshot{
		Schema:      snapshot.Schema,
		CollectedAt: time.Now().UTC(),
		Rules:       []snapshot.RuleDump{},
		Links:       []snapshot.Link{},
		Addrs:       []snapshot.Addr{},
		Routes:      []snapshot.Route{},
		Neighbors:   []snapshot.Neighbor{},
		Sysctls:     map[string]snapshot.Sysctl{},
		Proxies:     []snapshot.Proxy{},
	}
}
