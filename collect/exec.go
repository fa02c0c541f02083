// Package collect is the only package that reads the live host: it runs
// iptables-save and (in later stages) reads netlink, /proc and the Docker
// API. Every external command goes through the Runner seam so that tests
// can script it.
package collect

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// Runner runs one external command and returns its standard output.
// Implementations must return an *ExitError when the command ran and
// failed, and an error wrapping exec.ErrNotFound when it is not installed.
type Runner interface {
	Run(ctx context.Context, name string, args []string, stdin []byte) ([]byte, error)
}

// ExitError is a command that ran and exited non-zero, with what it said
// on stderr.
type ExitError struct {
	Cmd    string // command line, for messages
	Code   int
	Stderr string
}

func (e *ExitError) Error() string {
	msg := strings.TrimSpace(e.Stderr)
	if msg == "" {
		return fmt.Sprintf("running %s: exit status %d", e.Cmd, e.Code)
	}
	return fmt.Sprintf("running %s: exit status %d: %s", e.Cmd, e.Code, msg)
}

// ExecRunner runs commands with os/exec. Env, when set, is added to the
// process environment (e.g. XTABLES_LOCKFILE=...).
type ExecRunner struct {
	Env []string
}

// Run implements Runner.
func (r ExecRunner) Run(ctx context.Context, name string, args []string, stdin []byte) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if len(r.Env) > 0 {
		cmd.Env = append(cmd.Environ(), r.Env...)
	}
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err == nil {
		return stdout.Bytes(), nil
	}
	line := strings.Join(append([]string{name}, args...), " ")
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return stdout.Bytes(), &ExitError{Cmd: line, Code: ee.ExitCode(), Stderr: stderr.String()}
	}
	return nil, fmt.Errorf("running %s: %w", line, err)
}
