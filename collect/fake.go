package collect

import (
	"context"
	"fmt"
	"strings"
	"sync"
)

// Call is one expected command of a FakeRunner script and what it returns.
type Call struct {
	Name   string
	Args   []string
	Stdin  string // expected stdin; "" means none is checked
	Stdout string
	Err    error
}

// FakeRunner is a scripted Runner for tests: it expects exactly the calls
// of its script, in order, and fails on any surprise call. Check Done at
// the end of a test to catch calls that never came.
type FakeRunner struct {
	mu     sync.Mutex
	Script []Call
	next   int
}

// Run implements Runner.
func (f *FakeRunner) Run(_ context.Context, name string, args []string, stdin []byte) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	got := strings.Join(append([]string{name}, args...), " ")
	if f.next >= len(f.Script) {
		return nil, fmt.Errorf("fake runner: unexpected call %q (script has %d calls)", got, len(f.Script))
	}
	c := f.Script[f.next]
	want := strings.Join(append([]string{c.Name}, c.Args...), " ")
	if got != want {
		return nil, fmt.Errorf("fake runner: call %d: got %q, want %q", f.next+1, got, want)
	}
	if c.Stdin != "" && string(stdin) != c.Stdin {
		return nil, fmt.Errorf("fake runner: call %d %q: stdin %q, want %q", f.next+1, got, stdin, c.Stdin)
	}
	f.next++
	return []byte(c.Stdout), c.Err
}

// Done returns an error when calls of the script were never made.
func (f *FakeRunner) Done() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.next != len(f.Script) {
		return fmt.Errorf("fake runner: %d of %d scripted calls made; next expected %q", f.next, len(f.Script), f.Script[f.next].Name)
	}
	return nil
}
