package collect

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/iptscope/iptscope/snapshot"
)

// defaultDaemonConfig is where dockerd reads daemon.json without
// --config-file.
const defaultDaemonConfig = "/etc/docker/daemon.json"

// daemonKeys maps the daemon.json keys and flag names that shape Docker's
// rules to the Daemon field they set.
var daemonKeys = map[string]func(d *snapshot.Daemon) **bool{
	"iptables":       func(d *snapshot.Daemon) **bool { return &d.IPTables },
	"ip6tables":      func(d *snapshot.Daemon) **bool { return &d.IP6Tables },
	"ip-forward":     func(d *snapshot.Daemon) **bool { return &d.IPForward },
	"ip-masq":        func(d *snapshot.Daemon) **bool { return &d.IPMasq },
	"userland-proxy": func(d *snapshot.Daemon) **bool { return &d.UserlandProxy },
	"icc":            func(d *snapshot.Daemon) **bool { return &d.ICC },
}

// parseDaemonArgs reads a dockerd command line: the settings above
// (pflag booleans: --iptables, --iptables=false), -H/--host and
// --config-file (both "--flag value" and "--flag=value"). ok is false when
// argv is not dockerd.
func parseDaemonArgs(argv []string) (d snapshot.Daemon, ok bool) {
	if len(argv) == 0 || filepath.Base(argv[0]) != "dockerd" {
		return d, false
	}
	d.Args = argv
	for i := 1; i < len(argv); i++ {
		a := argv[i]
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch name {
		case "H", "host", "config-file":
			if !hasVal {
				if i+1 >= len(argv) {
					continue
				}
				i++
				val = argv[i]
			}
			if name == "config-file" {
				d.ConfigFile = val
			} else {
				d.Hosts = append(d.Hosts, val)
			}
			continue
		}
		if set, known := daemonKeys[name]; known {
			b := true
			if hasVal {
				v, err := strconv.ParseBool(val)
				if err != nil {
					continue
				}
				b = v
			}
			*set(&d) = &b
		}
	}
	return d, true
}

// applyDaemonConfig sets from daemon.json the settings the command line
// left unset (dockerd refuses a setting given in both).
func applyDaemonConfig(d *snapshot.Daemon, data []byte) error {
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(data, &cfg); err != nil {
		return fmt.Errorf("parsing %s: %w", d.ConfigFile, err)
	}
	for key, set := range daemonKeys {
		raw, ok := cfg[key]
		if !ok || *set(d) != nil {
			continue
		}
		var b bool
		if err := json.Unmarshal(raw, &b); err != nil {
			return fmt.Errorf("%s: %q is not a boolean", d.ConfigFile, key)
		}
		*set(d) = &b
	}
	if raw, ok := cfg["hosts"]; ok && len(d.Hosts) == 0 {
		_ = json.Unmarshal(raw, &d.Hosts)
	}
	return nil
}

// readDaemons scans procRoot for dockerd processes in the network
// namespace nsInode and reads their settings: the command line, then the
// config file through /proc/PID/root (so a daemon in another mount
// namespace is read as it sees its files).
func readDaemons(procRoot string, nsInode uint64) ([]snapshot.Daemon, error) {
	procs, denied, err := procsIn(procRoot, nsInode, func(argv []string) bool {
		_, ok := parseDaemonArgs(argv)
		return ok
	})
	if err != nil {
		return nil, err
	}
	var out []snapshot.Daemon
	for _, pr := range procs {
		d, _ := parseDaemonArgs(pr.argv)
		d.PID = pr.pid
		explicit := d.ConfigFile != ""
		if !explicit {
			d.ConfigFile = defaultDaemonConfig
		}
		data, err := os.ReadFile(filepath.Join(pr.dir, "root", d.ConfigFile))
		switch {
		case err == nil:
			if err := applyDaemonConfig(&d, data); err != nil {
				d.ConfigError = err.Error()
			}
		case errors.Is(err, fs.ErrNotExist) && !explicit:
			d.ConfigFile = "" // no daemon.json: every setting is Docker's default
		default:
			d.ConfigError = needsRoot(err).Error()
		}
		out = append(out, d)
	}
	if denied > 0 {
		return out, fmt.Errorf("%d dockerd processes not checked: reading /proc/PID/ns/net %w (run as root)", denied, ErrNeedsRoot)
	}
	return out, nil
}

// initialPIDNSInode is the inode of the initial PID namespace
// (PROC_PID_INIT_INO, fixed by the kernel).
const initialPIDNSInode = 0xEFFFFFFC

// inInitialPIDNS reports whether this process sees every process of the
// host: false inside a container without --pid=host, where /proc holds
// the container's processes only.
func inInitialPIDNS() bool {
	ino, err := inode("/proc/self/ns/pid")
	return err == nil && ino == initialPIDNSInode
}
