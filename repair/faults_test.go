package repair

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/iptscope/iptscope/collect"
	"github.com/iptscope/iptscope/diagnose"
)

// faultHost is a multi-table repair (a firewall reload wiped Docker's
// chains on the legacy backend: raw, nat and filter payloads) behind the
// stateful fake.
func faultHost(t *testing.T) (*churnHost, *diagnose.Plan, map[string]string) {
	t.Helper()
	h := newChurnHost(t, "docker-28.5-legacy-proxy-off-firewall-reload")
	_, p := h.plan()
	if n := len(Render(p)); n < 2 {
		t.Fatalf("%d payloads, want several tables", n)
	}
	return h, p, h.tablesNow()
}

func (h *churnHost) tablesNow() map[string]string {
	out := map[string]string{}
	for k := range h.fw.tables {
		out[k] = h.fw.save(k)
	}
	return out
}

func (h *churnHost) requireAsBefore(t *testing.T, before map[string]string) {
	t.Helper()
	for k, want := range before {
		if got := h.fw.save(k); got != want {
			t.Errorf("%s is not as before:\n%s\nwant:\n%s", k, got, want)
		}
	}
}

// isApply is the repair's own restore of a payload (not --test, not an
// undo: those have -D or -I lines only).
func isApply(name string, args []string, stdin string) bool {
	return strings.HasSuffix(name, "-restore") && !strings.Contains(strings.Join(args, " "), "--test") && strings.Contains(stdin, "\n-A ")
}

func TestAHeldXtablesLockNamesTheLockAndItsHolderAndChangesNothing(t *testing.T) {
	h, p, before := faultHost(t)
	t.Setenv("XTABLES_LOCKFILE", "/run/test-xtables.lock")
	h.fw.fail = func(name string, args []string, _ string) error {
		if strings.HasSuffix(name, "-restore") {
			return &collect.ExitError{Cmd: name, Code: 4, Stderr: "Another app is currently holding the xtables lock. Stopped waiting after 5s.\n"}
		}
		return nil
	}
	o := testOptions(t, h.fw)
	o.LockHolder = func(lock string) string { return "pid 4242 (iptables-legacy)" }
	_, err := Apply(context.Background(), p, o)
	var le *LockError
	if !errors.As(err, &le) {
		t.Fatalf("err %v, want a LockError", err)
	}
	msg := err.Error()
	for _, want := range []string{"the xtables lock /run/test-xtables.lock is held by pid 4242 (iptables-legacy)", "gave up after waiting 5 s", "nothing was changed"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "refused the payload") {
		t.Errorf("a held lock reported as a refused payload: %s", msg)
	}
	h.requireAsBefore(t, before)
}

func TestHolderInProcLocks(t *testing.T) {
	locks := "1: FLOCK  ADVISORY  WRITE 2468 fe:00:9978008 0 EOF\n1: -> FLOCK  ADVISORY  WRITE 2500 fe:00:9978008 0 EOF\n2: POSIX  ADVISORY  WRITE 28039 fe:00:10002579 0 EOF\n"
	if pid := holderIn(locks, 0xfe, 0, 9978008); pid != 2468 {
		t.Errorf("holder %d, want 2468 (not the waiter 2500)", pid)
	}
	if pid := holderIn(locks, 0xfe, 0, 1); pid != 0 {
		t.Errorf("holder %d of an unlocked file", pid)
	}
}

func TestAKernelRefusingALaterTableUndoesTheTablesAppliedBefore(t *testing.T) {
	h, p, before := faultHost(t)
	payloads := Render(p)
	last := payloads[len(payloads)-1]
	h.fw.fail = func(name string, args []string, stdin string) error {
		if isApply(name, args, stdin) && stdin == last.Text {
			return &collect.ExitError{Cmd: name, Code: 1, Stderr: "iptables-restore: line 3 failed\n"}
		}
		return nil
	}
	_, err := Apply(context.Background(), p, testOptions(t, h.fw))
	var pe *PayloadError
	if !errors.As(err, &pe) || pe.Line != 3 || !strings.Contains(err.Error(), "rolled back") {
		t.Fatalf("err %v, want a refused line 3 and a rollback", err)
	}
	h.requireAsBefore(t, before)
}

func TestAnIptablesRestoreKilledHalfWayLeavesTheHostAsBefore(t *testing.T) {
	for _, committed := range []bool{false, true} {
		name := "killed before its COMMIT"
		if committed {
			name = "killed after its COMMIT"
		}
		t.Run(name, func(t *testing.T) {
			h, p, before := faultHost(t)
			second := Render(p)[1].Text
			h.fw.fail = func(name string, args []string, stdin string) error {
				if !isApply(name, args, stdin) || stdin != second {
					return nil
				}
				if committed {
					// The table is committed, then the process dies.
					if err := h.fw.restore(familyOf(name), stdin, false, true); err != nil {
						t.Fatal(err)
					}
				}
				return &collect.ExitError{Cmd: name, Code: -1, Stderr: ""}
			}
			_, err := Apply(context.Background(), p, testOptions(t, h.fw))
			if err == nil || !strings.Contains(err.Error(), "rolled back") {
				t.Fatalf("err %v, want a rollback", err)
			}
			h.requireAsBefore(t, before)
		})
	}
}

func TestABackupThatCannotBeWrittenStopsTheRepairBeforeAnyChange(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"a full disk", syscall.ENOSPC, "no space left on device"},
		{"a read-only backup folder", syscall.EROFS, "read-only file system"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, p, before := faultHost(t)
			o := testOptions(t, h.fw)
			o.WriteFile = func(path string, _ []byte, _ os.FileMode) error {
				return &os.PathError{Op: "write", Path: path, Err: tc.err}
			}
			_, err := Apply(context.Background(), p, o)
			if err == nil || !strings.Contains(err.Error(), "writing the backup") || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "nothing was changed") {
				t.Fatalf("err %v", err)
			}
			for _, c := range h.fw.calls {
				if strings.Contains(c, "-restore") && !strings.Contains(c, "--test") {
					t.Errorf("restored although the backup failed: %s", c)
				}
			}
			h.requireAsBefore(t, before)
			if ents, _ := os.ReadDir(o.BackupDir); len(ents) > 0 {
				t.Errorf("files left in the backup folder: %v", ents)
			}
		})
	}
}

func TestAnAtomicBackupLeavesNoPartialFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(dir, 0o700)
	err := writeFileAtomic(filepath.Join(dir, "b.rules"), []byte("x"), 0o600)
	if os.Geteuid() != 0 && err == nil {
		t.Error("wrote into a read-only folder")
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".iptscope-backup-") {
			t.Errorf("temporary file left: %s", e.Name())
		}
	}
}

func TestABackupRecordsWhatItRestores(t *testing.T) {
	h, p, _ := faultHost(t)
	o := testOptions(t, h.fw)
	o.NetNS = "/proc/self/ns/net"
	res, err := Apply(context.Background(), p, o)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ReadBackup(res.BackupPath)
	if err != nil {
		t.Fatal(err)
	}
	if b.backend != "legacy" || b.netns != "/proc/self/ns/net" || b.time != "2025-01-02T03:04:05Z" {
		t.Errorf("header: backend %q netns %q time %q", b.backend, b.netns, b.time)
	}
	if strings.Join(b.tables, ",") != strings.Join(b.order, ",") || len(b.families) == 0 {
		t.Errorf("tables %v, sections %v, families %v", b.tables, b.order, b.families)
	}
	if len(b.plan) != len(p.Ops) {
		t.Errorf("%d plan lines, want one per operation (%d)", len(b.plan), len(p.Ops))
	}
}

func writeBackup(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "b.rules")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRestoreRefusesABackupOfAnotherBackendOrFamily(t *testing.T) {
	t.Run("another backend", func(t *testing.T) {
		path := writeBackup(t, "# iptscope backup\n# netns: h1\n# backend: legacy\n# section: ipv4 nat\n"+savedNAT)
		o := testOptions(t, &collect.FakeRunner{})
		o.NetNS, o.Backend = "/proc/self/ns/net", "nft"
		_, err := Restore(context.Background(), path, o)
		if !errors.Is(err, ErrBackupMismatch) || !strings.Contains(err.Error(), "legacy backend") || !strings.Contains(err.Error(), "nft backend") {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("an IPv6 table in an ipv4 section", func(t *testing.T) {
		v6 := "*nat\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -s fd00::/64 ! -o docker0 -j MASQUERADE\nCOMMIT\n"
		path := writeBackup(t, "# iptscope backup\n# backend: nft\n# section: ipv4 nat\n"+v6)
		if _, err := ReadBackup(path); !errors.Is(err, ErrBackupMismatch) || !strings.Contains(err.Error(), "fd00::/64") {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("a header that lists other tables than its sections", func(t *testing.T) {
		path := writeBackup(t, "# iptscope backup\n# backend: nft\n# tables: ipv4 filter\n# section: ipv4 nat\n"+savedNAT)
		if _, err := ReadBackup(path); !errors.Is(err, ErrBackupMismatch) {
			t.Fatalf("err %v", err)
		}
	})
}

func TestPruneKeepsTheNewestBackupsOfTheNamespace(t *testing.T) {
	dir := t.TempDir()
	mk := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 5; i++ {
		mk("2025010"+string(rune('1'+i))+"T000000.000000000Z-host.rules", "# iptscope backup\n")
		mk("2025010"+string(rune('1'+i))+"T000000.000000000Z-other.rules", "# iptscope backup\n")
	}
	mk("20250101T000000.000000000Z-host.r2.rules", "# iptscope backup\n")
	mk("20250100T000000.000000000Z-host.rules", "not a backup\n")
	mk("notes.txt", "mine\n")
	deleted, err := Prune(dir, "", 3)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range deleted {
		names = append(names, filepath.Base(d))
	}
	want := "20250101T000000.000000000Z-host.r2.rules,20250101T000000.000000000Z-host.rules,20250102T000000.000000000Z-host.rules"
	if strings.Join(names, ",") != want {
		t.Errorf("deleted %v, want %s", names, want)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 13-3 {
		t.Errorf("%d files left, want 10", len(ents))
	}
}
