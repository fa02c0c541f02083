package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestFixFaultsOnRealDocker breaks a real daemon (28.5, legacy backend,
// userland-proxy off) by flushing nat DOCKER and runs `doctor --fix --yes`
// against faults it must survive with the host exactly as before: the
// xtables lock held by another process (exit 2, iptscope's message names
// the lock and the holder), a full disk and a read-only folder for the
// backup (each a tmpfs in a private mount namespace). The refused and
// killed iptables-restore are tested through the host seam (repair's
// faults_test.go): a real kernel cannot be made to refuse half a payload
// that passed --test.
func TestFixFaultsOnRealDocker(t *testing.T) {
	requireRoot(t, "flock", "unshare", "mount")
	h := startDockerHost(t, "reliabflt", "28.5", "legacy", "off")
	if out, err := h.script("break", "nat-docker-flushed"); err != nil {
		t.Fatalf("break: %v\n%s", err, out)
	}
	broken := h.saveV4(t)

	t.Run("a held xtables lock: exit 2 naming the lock and its holder, nothing changed", func(t *testing.T) {
		lock := filepath.Join(h.State, "xtables.lock")
		// -o: the lock is flock's alone (its sleep child does not inherit
		// it), so killing flock's process group releases it.
		holder := exec.Command("flock", "-o", lock, "sleep", "120")
		holder.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := holder.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() {
			_ = syscall.Kill(-holder.Process.Pid, syscall.SIGKILL)
			_ = holder.Wait()
		}()
		if !waitUntil(t, "flock holds "+lock, probeDeadline, func() bool { return heldBy(lock) }) {
			t.Fatal("the lock was never taken")
		}
		start := time.Now()
		out, stderr, code := h.fix(t, t.TempDir())
		t.Logf("fix gave up after %s", time.Since(start).Round(100*time.Millisecond))
		if code != 2 {
			t.Errorf("exit %d, want 2\n%s\n%s", code, out, stderr)
		}
		for _, want := range []string{"the xtables lock " + lock + " is held by", "(flock)", "nothing was changed"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("stderr lacks %q:\n%s", want, stderr)
			}
		}
		if strings.Contains(stderr, "refused the payload") {
			t.Errorf("a held lock reported as a refused payload:\n%s", stderr)
		}
		if now := h.saveV4(t); now != broken {
			t.Errorf("the rules changed:\n%s", now)
		}
	})

	for _, fault := range []struct{ name, mount, want string }{
		{"a full disk for the backup", "size=64k", "no space left on device"},
		{"a read-only backup folder", "ro,size=64k", "read-only file system"},
	} {
		t.Run(fault.name+": exit 2, nothing changed", func(t *testing.T) {
			dir := t.TempDir()
			// A private mount namespace: the tmpfs is seen by this
			// command alone and goes with it.
			sh := `mount -t tmpfs -o "$1" iptscope-test "$2" || exit 90
dd if=/dev/zero of="$2/fill" bs=4k 2>/dev/null
shift 2
exec "$@"`
			args := []string{"-m", "--propagation", "private", "sh", "-c", sh, "sh", fault.mount, dir,
				iptscopeBin, "doctor", "--fix", "--yes", "--netns", h.Name, "--docker-host", "unix://" + h.Socket, "--backup-dir", dir}
			cmd := exec.Command("unshare", args...)
			cmd.Env = h.hostEnv()
			out, stderr, code := runCmd(t, cmd)
			if code != 2 || !strings.Contains(stderr, fault.want) || !strings.Contains(stderr, "nothing was changed") {
				t.Errorf("exit %d, want 2 and %q:\n%s\n%s", code, fault.want, out, stderr)
			}
			if now := h.saveV4(t); now != broken {
				t.Errorf("the rules changed:\n%s", now)
			}
		})
	}

	// And without a fault the same host is repaired.
	if _, stderr, code := h.fix(t, t.TempDir()); code != 0 {
		t.Fatalf("doctor --fix without a fault: exit %d: %s", code, stderr)
	}
	h.requireProbe(t)
}

// heldBy reports whether some process holds a lock on the file.
func heldBy(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if err == nil {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		return false
	}
	return true
}
