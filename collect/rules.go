package collect

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"runtime"
	"strings"
)

// ErrNotPermitted is returned when reading the rules needs privileges the
// process does not have.
var ErrNotPermitted = errors.New("permission denied")

// ErrNotInstalled is returned when the iptables tools are not installed.
var ErrNotInstalled = errors.New("not installed")

// Family selects IPv4 (iptables) or IPv6 (ip6tables) rules.
type Family string

// The address families.
const (
	IPv4 Family = "ipv4"
	IPv6 Family = "ipv6"
)

// SaveCommand is the save tool for a family and backend. Backend "" means
// whatever `iptables-save` on PATH points to; "nft" and "legacy" select
// iptables-nft-save / iptables-legacy-save.
func SaveCommand(f Family, backend string) string {
	base := "iptables"
	if f == IPv6 {
		base = "ip6tables"
	}
	if backend != "" {
		return base + "-" + backend + "-save"
	}
	return base + "-save"
}

// SaveRules runs `<family>-save -c` for the backend (see SaveCommand) and
// returns its output. Errors are ErrNeedsLinux (an ExecRunner off Linux),
// ErrNotPermitted (with the advice to run as
// root or use --from), ErrNotInstalled, or the command's own failure.
func SaveRules(ctx context.Context, r Runner, f Family, backend string) ([]byte, error) {
	name := SaveCommand(f, backend)
	if _, live := r.(ExecRunner); live && runtime.GOOS != "linux" {
		return nil, fmt.Errorf("reading rules: %s on %s: %w (save the rules on the Linux host with `sudo iptables-save -c > rules.txt` and pass --from rules.txt)", name, runtime.GOOS, ErrNeedsLinux)
	}
	out, err := r.Run(ctx, name, []string{"-c"}, nil)
	if err == nil {
		return out, nil
	}
	if errors.Is(err, exec.ErrNotFound) {
		return nil, fmt.Errorf("reading rules: %s: %w (install the iptables package)", name, ErrNotInstalled)
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		s := strings.ToLower(ee.Stderr)
		if strings.Contains(s, "permission denied") || strings.Contains(s, "must be root") || strings.Contains(s, "operation not permitted") {
			return nil, fmt.Errorf("reading rules: %s needs root: %w (run with sudo, or save the rules on the host with `sudo iptables-save -c > rules.txt` and pass --from rules.txt)", name, ErrNotPermitted)
		}
	}
	return nil, fmt.Errorf("reading rules: %w", err)
}
