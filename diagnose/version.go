package diagnose

import (
	"fmt"
	"strconv"
	"strings"
)

// Version is a Docker server version, e.g. 20.10.24 or 28.5.2. Distro
// suffixes ("+dfsg1", "-ce", "~3") are dropped.
type Version struct{ Major, Minor, Patch int }

// ParseVersion reads "20.10.24+dfsg1", "28.5.2", "docker-v29.1.0". It
// returns an error naming the input when there is no MAJOR.MINOR.
func ParseVersion(s string) (Version, error) {
	t := strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(s), "docker-"), "v")
	if i := strings.IndexAny(t, "+-~ "); i >= 0 {
		t = t[:i]
	}
	parts := strings.Split(t, ".")
	var v Version
	var nums [3]int
	for i := 0; i < len(parts) && i < 3; i++ {
		n, err := strconv.Atoi(parts[i])
		if err != nil {
			return v, fmt.Errorf("docker version %q: not MAJOR.MINOR.PATCH", s)
		}
		nums[i] = n
	}
	if len(parts) < 2 {
		return v, fmt.Errorf("docker version %q: not MAJOR.MINOR.PATCH", s)
	}
	return Version{nums[0], nums[1], nums[2]}, nil
}

func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }

// AtLeast reports whether v >= major.minor.patch.
func (v Version) AtLeast(major, minor, patch int) bool {
	if v.Major != major {
		return v.Major > major
	}
	if v.Minor != minor {
		return v.Minor > minor
	}
	return v.Patch >= patch
}

// Era is a family of Docker versions that write the same iptables layout
// (docker-facts.md §1).
type Era string

const (
	// EraUnknown: no version, or one older than 20.10.
	EraUnknown Era = ""
	// EraClassic: 20.10 to 27.x. Per-bridge rules directly in FORWARD,
	// DOCKER-ISOLATION-STAGE-1/2 ending in RETURN.
	EraClassic Era = "classic"
	// Era2800: 28.0.0 only, the ipset layout. Recognised, not modelled.
	Era2800 Era = "28.0.0-ipset"
	// Era28: 28.0.1 to 28.x. FORWARD -> DOCKER-USER, DOCKER-FORWARD ->
	// DOCKER-CT / DOCKER-ISOLATION-STAGE-1 / DOCKER-BRIDGE, raw DROPs.
	Era28 Era = "28"
	// Era29: 29.x with the iptables backend: DOCKER-INTERNAL replaces the
	// isolation chains, no nat "-i BRIDGE -j RETURN". Modelled from
	// moby's generated docs only: no real capture yet.
	Era29 Era = "29"
	// Era29Nftables: 29.x with --firewall-backend=nftables: Docker's
	// tables ip/ip6 docker-bridges, no iptables rule (docker-facts.md §2.5).
	Era29Nftables Era = "29-nftables"
)

// EraOf says which iptables layout a version writes (the layouts table,
// layout.go; EraUnknown before 20.10).
func EraOf(v Version) Era {
	l, _, ok := LayoutFor(v, BackendIPTables)
	if !ok {
		return EraUnknown
	}
	return l.Era
}
