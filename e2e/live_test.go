// Package e2e holds tests against the real thing: real iptables in
// throwaway network namespaces and (later) real Docker daemons. They need
// root; with IPTSCOPE_E2E=1 (CI) a missing prerequisite fails the test
// instead of skipping it. Every test registers its cleanup before its
// setup and never touches the root network namespace.
package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var iptscopeBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "iptscope-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	// Readable by all: one test runs the binary as an unprivileged user.
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	iptscopeBin = filepath.Join(dir, "iptscope")
	if out, err := exec.Command("go", "build", "-o", iptscopeBin, "../cmd/iptscope").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building iptscope: %v\n%s", err, out)
		os.Exit(2)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// require skips (or, with IPTSCOPE_E2E=1, fails) when the test cannot run.
func require(t *testing.T, ok bool, why string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("IPTSCOPE_E2E") != "" {
		t.Fatalf("IPTSCOPE_E2E=1 but %s", why)
	}
	t.Skip(why)
}

func requireRoot(t *testing.T, tools ...string) {
	t.Helper()
	require(t, os.Geteuid() == 0, "this test needs root")
	for _, tool := range tools {
		_, err := exec.LookPath(tool)
		require(t, err == nil, tool+" is not installed")
	}
}

// netns creates a throwaway network namespace and returns its path; the
// cleanup that deletes it is registered before it is created.
func netns(t *testing.T) (name, path string) {
	t.Helper()
	name = fmt.Sprintf("ipts-e2e-%d-%d", os.Getpid(), len(t.Name())+int(nextID()))
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	return name, "/var/run/netns/" + name
}

var idCounter int64

func nextID() int64 { idCounter++; return idCounter }

// inNetns runs a command inside the namespace with nsenter (not `ip netns
// exec`, which remounts /sys), with its own xtables lock file so that
// nothing waits for the host's lock.
func inNetns(t *testing.T, nsPath, stdin string, name string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command("nsenter", append([]string{"--net=" + nsPath, name}, args...)...)
	cmd.Env = append(os.Environ(), "XTABLES_LOCKFILE="+filepath.Join(t.TempDir(), "xtables.lock"))
	cmd.Stdin = strings.NewReader(stdin)
	return runCmd(t, cmd)
}

// runCmd runs cmd and returns its stdout, stderr and exit code; a command
// that cannot start fails the test.
func runCmd(t *testing.T, cmd *exec.Cmd) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running %s: %v", cmd.Path, err)
	}
	return out.String(), errb.String(), code
}

// TestLiveReadMatchesTheDump loads each real fixture into a fresh
// namespace with the backend it came from, then checks that iptscope
// reading the live rules (no --from) sees what iptables-save prints there.
func TestLiveReadMatchesTheDump(t *testing.T) {
	requireRoot(t, "ip", "nsenter", "iptables-nft-restore", "iptables-legacy-restore")
	fixtures, _ := filepath.Glob("../fixtures/*/iptables-save.txt")
	require(t, len(fixtures) > 0, "no fixtures")
	for _, fx := range fixtures {
		backend := "nft"
		if strings.Contains(fx, "legacy") {
			backend = "legacy"
		}
		t.Run(fx, func(t *testing.T) {
			data, err := os.ReadFile(fx)
			if err != nil {
				t.Fatal(err)
			}
			if len(data) == 0 {
				return // backend-split captures: the host's iptables shows nothing
			}
			_, ns := netns(t)
			// The binary `iptables-save` on PATH decides the backend; put a
			// PATH folder first whose iptables-save is the fixture's backend.
			bin := t.TempDir()
			for _, tool := range []string{"iptables", "iptables-save", "iptables-restore"} {
				target, err := exec.LookPath(strings.Replace(tool, "iptables", "iptables-"+backend, 1))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(target, filepath.Join(bin, tool)); err != nil {
					t.Fatal(err)
				}
			}
			t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
			if _, stderr, code := inNetns(t, ns, string(data), "iptables-restore", "-c"); code != 0 {
				t.Fatalf("iptables-restore: %s", stderr)
			}
			want, stderr, code := inNetns(t, ns, "", "iptables-save", "-c")
			if code != 0 {
				t.Fatalf("iptables-save: %s", stderr)
			}
			gotSave, stderr, code := inNetns(t, ns, "", iptscopeBin, "dump", "-o", "save")
			if code != 0 {
				t.Fatalf("iptscope dump: exit %d: %s", code, stderr)
			}
			if rulesOf(gotSave) != rulesOf(want) {
				t.Errorf("live dump differs from iptables-save:\n%s\n---\n%s", gotSave, want)
			}
			// nat, or filter when the dump has no nat table (Docker 29's
			// nftables backend with iptables-nft's FORWARD DROP left).
			table := "nat"
			if !strings.Contains(string(data), "\n*nat\n") && !strings.HasPrefix(string(data), "*nat\n") {
				table = "filter"
			}
			live, stderr, code := inNetns(t, ns, "", iptscopeBin, "graph", "-t", table, "--format", "json")
			if code != 0 {
				t.Fatalf("iptscope graph: exit %d: %s", code, stderr)
			}
			// The legacy backend prints tables in kernel order, not the
			// fixture's, so compare with the graph of what the namespace's
			// own iptables-save printed.
			saved := filepath.Join(t.TempDir(), "saved.txt")
			if err := os.WriteFile(saved, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			offline, err := exec.Command(iptscopeBin, "graph", "--from", saved, "-t", table, "--format", "json").Output()
			if err != nil {
				t.Fatal(err)
			}
			if live != string(offline) {
				t.Errorf("live graph differs from the graph of the fixture:\n%s\n---\n%s", live, offline)
			}
		})
	}
}

// rulesOf drops the "# Generated/Completed" comments, which carry times.
func rulesOf(save string) string {
	var b strings.Builder
	for _, l := range strings.Split(save, "\n") {
		if !strings.HasPrefix(l, "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// TestLiveReadWithoutRootSaysWhatToDo runs iptscope as an unprivileged
// user: it must fail with exit 2 and say to use root or --from.
func TestLiveReadWithoutRootSaysWhatToDo(t *testing.T) {
	requireRoot(t, "setpriv", "iptables-save")
	cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", iptscopeBin, "dump")
	var errb bytes.Buffer
	cmd.Stderr = &errb
	err := cmd.Run()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 2 {
		t.Fatalf("want exit 2, got %v (stderr %s)", err, errb.String())
	}
	for _, want := range []string{"needs root", "--from"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("stderr %q lacks %q", errb.String(), want)
		}
	}
}
