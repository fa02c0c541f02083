package e2e

import (
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestChurnFixOnRealDocker repairs real daemons (28.5 and 20.10, nft,
// userland-proxy off so that only NAT answers, live-restore on) while
// containers with published ports start and stop: nat DOCKER is flushed
// and `doctor --fix --yes` run several times during the churn. After the
// churn stops (and one more fix on the quiet host) doctor exits 0, every
// remaining published port answers, no rule names a removed container,
// and Docker's rules equal what the same daemon writes after a
// live-restore restart.
func TestChurnFixOnRealDocker(t *testing.T) {
	for _, v := range []string{"28.5", "20.10"} {
		t.Run("docker "+v, func(t *testing.T) {
			t.Parallel()
			name := "reliabch" + strings.ReplaceAll(v, ".", "")
			h := startDockerHostFull(t, &dockerHost{Name: name, Version: v, Backend: "nft", Proxy: "off", DaemonExtra: `"live-restore": true`})
			c := startChurn(t, h)
			const fixes = 6
			outcomes := map[int]int{}
			var replans, undone, skipped int
			last := 0
			for i := 0; i < fixes; i++ {
				// A fix per step of the churn at least: wait until a
				// container started or stopped since the last fix.
				waitUntil(t, "the churn makes progress", probeDeadline, func() bool { return c.steps() > last })
				last = c.steps()
				h.ipt(t, "iptables", "-t", "nat", "-F", "DOCKER")
				out, stderr, code := h.fix(t, t.TempDir())
				outcomes[code]++
				replans += count(out, `planned again (\d+) time`)
				undone += count(out, `(\d+) added rule\(s\) deleted again`)
				skipped += count(out, `(\d+) rule\(s\) already written by Docker`)
				if code != 0 {
					t.Logf("fix %d during the churn: exit %d: %s", i+1, code, lastLine(stderr))
				}
			}
			churned, errs := c.stop()
			for _, e := range errs {
				t.Logf("churn: %s", e)
			}
			t.Logf("docker %s: %d containers churned (started or removed: %d steps), %d fixes during the churn, exit codes %v, %d re-plans, %d rules undone, %d already written by Docker",
				v, churned, last, fixes, outcomes, replans, undone, skipped)

			// Quiet now: one more fix puts back what the last flush took.
			out, stderr, code := h.fix(t, t.TempDir())
			if code != 0 {
				t.Fatalf("doctor --fix after the churn: exit %d\n%s\n%s", code, out, stderr)
			}
			if rep, code, stderr := h.doctor(t, ""); code != 0 {
				for _, f := range rep.Findings {
					t.Logf("%s %s: %s", f.Severity, f.ID, f.Title)
				}
				t.Errorf("doctor after the churn: exit %d (%s)", code, stderr)
			}
			h.requireProbe(t)
			running := h.requireChurnPortsAnswer(t)
			h.requireNoRuleForRemoved(t, running)

			fixed := h.saveV4(t)
			if out, err := h.script("restart"); err != nil {
				t.Fatalf("restart: %v\n%s", err, out)
			}
			h.requireProbe(t)
			compareChains(t, h.saveV4(t), fixed)
		})
	}
}

// churn starts and removes containers publishing ports in the background:
// at most three run at a time, container i publishes 9100+i%4.
type churn struct {
	mu      sync.Mutex
	n       int // steps done (a start or a removal)
	started int
	errs    []string
	// busy are the spans of the docker commands run, to tell which
	// repairs overlapped one.
	busy [][2]time.Time
	quit chan struct{}
	done chan struct{}
}

func startChurn(t *testing.T, h *dockerHost) *churn { return startChurnPaced(t, h, nil) }

// startChurnPaced is startChurn with a pause after each step i (nil: none),
// for a consumer that waits for Docker to be quiet (watch).
func startChurnPaced(t *testing.T, h *dockerHost, pause func(i int) time.Duration) *churn {
	c := &churn{quit: make(chan struct{}), done: make(chan struct{})}
	rest := func(i int) {
		if pause == nil {
			return
		}
		select {
		case <-c.quit:
		case <-time.After(pause(i)):
		}
	}
	dk := func(args ...string) error {
		start := time.Now()
		out, err := exec.Command("bash", append([]string{script, "docker", h.Name}, args...)...).CombinedOutput()
		c.mu.Lock()
		c.busy = append(c.busy, [2]time.Time{start, time.Now()})
		c.mu.Unlock()
		if err != nil {
			return fmt.Errorf("docker %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	go func() {
		defer close(c.done)
		for i := 0; ; i++ {
			select {
			case <-c.quit:
				return
			default:
			}
			if i >= 3 {
				err := dk("rm", "-f", fmt.Sprintf("churn%d", i-3))
				c.step(err, false)
				rest(c.steps())
			}
			err := dk("run", "-d", "--name", fmt.Sprintf("churn%d", i), "-p", fmt.Sprintf("%d:80", 9100+i%4), "bb:local", "/bin/busybox", "httpd", "-f", "-p", "80", "-h", "/www")
			c.step(err, true)
			rest(c.steps())
		}
	}()
	t.Cleanup(func() { c.stop() })
	return c
}

func (c *churn) step(err error, start bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	if start && err == nil {
		c.started++
	}
	if err != nil {
		c.errs = append(c.errs, err.Error())
	}
}

// during reports whether a docker command of the churn was running at t.
func (c *churn) during(t time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, b := range c.busy {
		if !t.Before(b[0]) && !t.After(b[1]) {
			return true
		}
	}
	return false
}

func (c *churn) steps() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// stop ends the churn and waits for its last docker command; it returns
// the containers started and the errors seen.
func (c *churn) stop() (int, []string) {
	select {
	case <-c.quit:
	default:
		close(c.quit)
	}
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.started, c.errs
}

// requireChurnPortsAnswer checks from the client namespace that every
// running churn container's port answers; it returns the running
// containers' addresses and published host ports.
func (h *dockerHost) requireChurnPortsAnswer(t *testing.T) map[string]bool {
	t.Helper()
	env, _ := h.script("env")
	netx := regexp.MustCompile(`NETX=['"]?(\d+)`).FindStringSubmatch(env)
	if netx == nil {
		t.Fatalf("no NETX in the host's env:\n%s", env)
	}
	running := map[string]bool{}
	for _, c := range h.inspectContainers(t) {
		if !c.State.Running {
			continue
		}
		for _, n := range c.NetworkSettings.Networks {
			running[n.IPAddress] = true
		}
		if !strings.HasPrefix(c.Name, "/churn") {
			continue
		}
		for _, bs := range c.NetworkSettings.Ports {
			for _, b := range bs {
				url := fmt.Sprintf("http://198.18.%s.1:%s/", netx[1], b.HostPort)
				running[":"+b.HostPort] = true
				if !waitUntil(t, c.Name+" answers on "+url, probeDeadline, func() bool {
					return exec.Command("nsenter", "--net=/var/run/netns/"+h.Name+"-c", "curl", "-fsS", "-o", "/dev/null", "--connect-timeout", "3", url).Run() == nil
				}) {
					t.Errorf("%s: %s does not answer from the client", c.Name, url)
				}
			}
		}
	}
	return running
}

var (
	addr32 = regexp.MustCompile(`172\.(?:1[6-9]|2\d|3[01])\.\d+\.\d+(?:/32|:\d+)`)
	dport  = regexp.MustCompile(`--dport (\d+) -j DNAT`)
)

// requireNoRuleForRemoved fails for a rule that names a container address
// or a DNAT for a host port no running container has.
func (h *dockerHost) requireNoRuleForRemoved(t *testing.T, running map[string]bool) {
	t.Helper()
	for _, l := range strings.Split(h.saveV4(t), "\n") {
		for _, a := range addr32.FindAllString(l, -1) {
			ip := strings.SplitN(strings.SplitN(a, "/", 2)[0], ":", 2)[0]
			if !running[ip] {
				t.Errorf("a rule names %s, which no running container has: %s", ip, l)
			}
		}
		if m := dport.FindStringSubmatch(l); m != nil && !running[":"+m[1]] && !layoutPort[m[1]] {
			t.Errorf("a DNAT for host port %s, which no running container publishes: %s", m[1], l)
		}
	}
}

// layoutPort are the host ports of dockerhost.sh layout's containers.
var layoutPort = map[string]bool{"8080": true, "8081": true, "7000": true, "7001": true, "7002": true, "9090": true}

// count sums the numbers re captures in s.
func count(s, re string) int {
	n := 0
	for _, m := range regexp.MustCompile(re).FindAllStringSubmatch(s, -1) {
		var v int
		fmt.Sscan(m[1], &v)
		n += v
	}
	return n
}

func lastLine(s string) string {
	ls := strings.Split(strings.TrimSpace(s), "\n")
	return ls[len(ls)-1]
}
