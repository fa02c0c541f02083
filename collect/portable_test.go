package collect

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestBuildsOffLinux cross-builds the module for macOS and the command for
// Windows: everything but the live read is pure Go, and collect's stub
// (collect_other.go) must keep it so. It runs the go command on PATH and
// skips without one (outside CI). Cross builds of the standard library are
// cached after the first run.
func TestBuildsOffLinux(t *testing.T) {
	if testing.Short() {
		t.Skip("cross builds are slow the first time; skipped with -short")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		if os.Getenv("CI") != "" || os.Getenv("IPTSCOPE_E2E") != "" {
			t.Fatal("go is required on PATH here")
		}
		t.Skip("go not on PATH")
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		goos string
		args []string
	}{
		{"darwin", []string{"build", "./..."}},
		{"darwin", []string{"vet", "./collect/...", "./parse/...", "./render/...", "./snapshot/...", "./cmd/..."}},
		{"windows", []string{"build", "-o", os.DevNull, "./cmd/iptscope"}},
		{"windows", []string{"vet", "./collect/...", "./cmd/..."}},
	} {
		t.Run("GOOS="+c.goos+" go "+strings.Join(c.args, " "), func(t *testing.T) {
			if c.goos == runtime.GOOS {
				t.Skip("native")
			}
			cmd := exec.Command(gobin, c.args...)
			cmd.Dir = root
			cmd.Env = append(os.Environ(), "GOOS="+c.goos, "GOARCH=amd64", "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
		})
	}
}
