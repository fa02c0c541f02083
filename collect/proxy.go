package collect

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/iptscope/iptscope/snapshot"
)

// parseProxyArgs reads a docker-proxy command line (argv, as in
// /proc/PID/cmdline):
//
//	docker-proxy -proto tcp -host-ip 0.0.0.0 -host-port 8080 \
//	    -container-ip 172.17.0.2 -container-port 80 [-use-listen-fd]
//
// Go's flag package also accepts --flag and -flag=value; both are handled.
// ok is false when the process is not a docker-proxy (isProxy).
func parseProxyArgs(argv []string) (p snapshot.Proxy, ok bool, err error) {
	if !isProxy(argv) {
		return p, false, nil
	}
	p.Args = argv
	for i := 1; i < len(argv); i++ {
		a := strings.TrimLeft(argv[i], "-")
		if a == argv[i] {
			return p, true, fmt.Errorf("docker-proxy argument %q: not a flag", argv[i])
		}
		name, val, hasVal := strings.Cut(a, "=")
		if name == "use-listen-fd" {
			p.UseListenFD = !hasVal || val == "true"
			continue
		}
		if !hasVal {
			if i+1 >= len(argv) {
				return p, true, fmt.Errorf("docker-proxy flag -%s: missing value", name)
			}
			i++
			val = argv[i]
		}
		switch name {
		case "proto":
			p.Proto = val
		case "host-ip":
			p.HostIP = val
		case "container-ip":
			p.ContainerIP = val
		case "host-port", "container-port", "host-port-end":
			n, err := strconv.Atoi(val)
			if err != nil || n < 0 || n > 65535 {
				return p, true, fmt.Errorf("docker-proxy flag -%s: bad port %q", name, val)
			}
			switch name {
			case "host-port":
				p.HostPort = n
			case "host-port-end":
				p.HostPortEnd = n
			default:
				p.ContainerPort = n
			}
		}
		// Other flags are kept in Args only.
	}
	return p, true, nil
}

// isProxy reports whether argv is a docker-proxy: its program is named
// docker-proxy (any directory; "docker-proxy-current" and similar
// distribution renames too), or it carries docker-proxy's own flags
// -host-port and -container-ip (the daemon's "userland-proxy-path" can
// name any binary). A missed proxy would read as a killed one
// (proxy-missing).
func isProxy(argv []string) bool {
	if len(argv) == 0 {
		return false
	}
	if strings.HasPrefix(filepath.Base(argv[0]), "docker-proxy") {
		return true
	}
	var hostPort, containerIP bool
	for _, a := range argv[1:] {
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch name {
		case "host-port":
			hostPort = true
		case "container-ip":
			containerIP = true
		}
	}
	return hostPort && containerIP
}

// vmRSS reads VmRSS from /proc/PID/status, in bytes.
func vmRSS(status []byte) int64 {
	for _, line := range bytes.Split(status, []byte("\n")) {
		rest, ok := bytes.CutPrefix(line, []byte("VmRSS:"))
		if !ok {
			continue
		}
		f := strings.Fields(string(rest))
		if len(f) >= 1 {
			n, _ := strconv.ParseInt(f[0], 10, 64)
			if len(f) == 2 && f[1] == "kB" {
				n *= 1024
			}
			return n
		}
	}
	return 0
}

// readProxies scans procRoot/*/cmdline for docker-proxy processes whose
// network namespace (inode of /proc/PID/ns/net) is nsInode. Processes that
// vanish mid-scan are skipped. Reading another user's ns link needs root:
// such processes are counted and reported in the error.
func readProxies(procRoot string, nsInode uint64) ([]snapshot.Proxy, error) {
	procs, denied, err := procsIn(procRoot, nsInode, isProxy)
	if err != nil {
		return nil, err
	}
	var out []snapshot.Proxy
	var errs []error
	for _, pr := range procs {
		p, _, perr := parseProxyArgs(pr.argv)
		if perr != nil {
			errs = append(errs, fmt.Errorf("docker-proxy pid %d: %w", pr.pid, perr))
		}
		p.PID = pr.pid
		if st, err := os.ReadFile(filepath.Join(pr.dir, "status")); err == nil {
			p.RSSBytes = vmRSS(st)
		}
		out = append(out, p)
	}
	if denied > 0 {
		errs = append(errs, fmt.Errorf("%d docker-proxy processes not checked: reading /proc/PID/ns/net %w (run as root)", denied, ErrNeedsRoot))
	}
	return out, errors.Join(errs...)
}

// nsProc is a process of the target namespace whose command line matched.
type nsProc struct {
	pid  int
	dir  string // procRoot/PID
	argv []string
}

// procsIn lists, by PID, the processes under procRoot whose command line
// wants and whose network namespace (inode of /proc/PID/ns/net) is
// nsInode. Processes that vanish mid-scan are skipped; denied counts the
// matching ones whose namespace could not be read (another user's, not
// root).
func procsIn(procRoot string, nsInode uint64, wants func(argv []string) bool) (out []nsProc, denied int, err error) {
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, 0, fmt.Errorf("listing processes: %w", err)
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		dir := filepath.Join(procRoot, e.Name())
		cmdline, err := os.ReadFile(filepath.Join(dir, "cmdline"))
		if err != nil || len(cmdline) == 0 {
			continue
		}
		argv := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
		if !wants(argv) {
			continue
		}
		ino, err := inode(filepath.Join(dir, "ns", "net"))
		if err != nil {
			if errors.Is(err, os.ErrPermission) {
				denied++
			}
			continue
		}
		if ino == nsInode {
			out = append(out, nsProc{pid: pid, dir: dir, argv: argv})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].pid < out[j].pid })
	return out, denied, nil
}
