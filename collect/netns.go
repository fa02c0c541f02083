//go:build linux

package collect

import (
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"github.com/vishvananda/netns"
)

// netnsDir is where `ip netns add NAME` mounts its namespaces.
const netnsDir = "/var/run/netns"

// origNS is the namespace the process started in, opened during package
// initialisation (the main goroutine is then locked to the main thread and
// nothing has switched yet). "The current namespace" means this one, never
// /proc/self/ns/net: that shows the main thread, and a goroutine that locks
// itself to the main thread and exits without switching back leaves the
// main thread wedged in another namespace (the runtime cannot end it).
var origNS, _ = netns.Get()

// origNSPath names origNS through our own descriptor, valid from any thread.
func origNSPath() string {
	if origNS.IsOpen() {
		return fmt.Sprintf("/proc/self/fd/%d", int(origNS))
	}
	return "/proc/thread-self/ns/net"
}

// target is the network namespace being collected.
type target struct {
	name  string // as given in Options.NetNS
	path  string // file that names it; /proc/self/ns/net for the current one
	inode uint64
	other bool // not the collector's own namespace: switch threads to read it
}

// resolveNetNS turns Options.NetNS into a target: "" is the current
// namespace, a bare name is /var/run/netns/NAME, anything with a slash is a
// path (/proc/PID/ns/net, /var/run/docker/netns/ID).
func resolveNetNS(name string) (target, error) {
	t := target{name: name, path: origNSPath()}
	if name != "" {
		t.path = name
		if !strings.Contains(name, "/") {
			t.path = filepath.Join(netnsDir, name)
		}
	}
	ino, err := inode(t.path)
	if err != nil {
		return t, fmt.Errorf("opening network namespace %s: %w", t.path, err)
	}
	t.inode = ino
	self, err := inode(origNSPath())
	t.other = err != nil || self != ino
	return t, nil
}

// inode is the inode number of a namespace file: two paths name the same
// namespace when their inodes are equal (as `ip netns identify` compares).
func inode(path string) (uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// inNetNS runs fn on a fresh OS thread switched into the namespace at path
// and returns its error. fn may exec commands (Go forks the child from the
// calling thread, so the child starts in the thread's namespace) and open
// /proc/sys/net files (resolved against the opening thread's namespace).
//
// The thread is locked while it is switched. Afterwards it switches back to
// origNS and unlocks; if switching back fails it stays locked, and the
// runtime ends the thread when the goroutine returns, so no other goroutine
// ever runs in the wrong namespace. (The containernetworking/plugins pkg/ns
// pattern.)
func inNetNS(path string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		h, err := netns.GetFromPath(path)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("opening network namespace %s: %w", path, needsRoot(err))
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			// setns failed: the thread is where it was.
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("entering network namespace %s: %w", path, needsRoot(err))
			return
		}
		err = fn()
		if origNS.IsOpen() && netns.Set(origNS) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}
