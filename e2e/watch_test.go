package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/iptscope/iptscope/collect"
	"github.com/iptscope/iptscope/diagnose"
	"github.com/iptscope/iptscope/internal/synth"
	"github.com/iptscope/iptscope/parse"
	"github.com/iptscope/iptscope/snapshot"
	"github.com/iptscope/iptscope/watch"
)

// watchEvent is one line of `iptscope watch -o json` (iptscope.watch/v1).
type watchEvent struct {
	Time     time.Time `json:"time"`
	Event    string    `json:"event"`
	Findings []string  `json:"findings"`
	By       *struct {
		PID  int    `json:"pid"`
		Comm string `json:"comm"`
	} `json:"by"`
	Generation uint32 `json:"generation"`
	Message    string `json:"message"`
}

// watcher is a running `iptscope watch` and the events it printed.
type watcher struct {
	t       *testing.T
	cmd     *exec.Cmd
	mu      sync.Mutex
	events  []watchEvent
	seen    int // events already returned by next
	stderr  strings.Builder
	metrics string // the /metrics URL, once printed
	done    chan struct{}
}

// startWatch runs iptscope watch for h with args; its SIGTERM and wait
// are registered as a cleanup before it starts.
func (h *dockerHost) startWatch(t *testing.T, args ...string) *watcher {
	t.Helper()
	all := append([]string{"watch", "--netns", h.Name, "--docker-host", "unix://" + h.Socket, "-o", "json"}, args...)
	w := &watcher{t: t, cmd: exec.Command(iptscopeBin, all...), done: make(chan struct{})}
	w.cmd.Env = h.hostEnv()
	out, err := w.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	errp, err := w.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.stop(t) })
	var wg sync.WaitGroup
	wg.Go(func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var e watchEvent
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Errorf("watch printed a line that is not an event: %q", sc.Text())
				continue
			}
			t.Logf("watch: %s", sc.Text())
			w.mu.Lock()
			w.events = append(w.events, e)
			w.mu.Unlock()
		}
	})
	wg.Go(func() {
		sc := bufio.NewScanner(errp)
		re := regexp.MustCompile(`metrics on (http://\S+/metrics)`)
		for sc.Scan() {
			w.mu.Lock()
			w.stderr.WriteString(sc.Text() + "\n")
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				w.metrics = m[1]
			}
			w.mu.Unlock()
		}
	})
	go func() { wg.Wait(); close(w.done) }()
	return w
}

// stop sends SIGTERM and requires a clean exit 0 within 10 s.
func (w *watcher) stop(t *testing.T) {
	if w.cmd.ProcessState != nil {
		return
	}
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	exited := make(chan error, 1)
	go func() { <-w.done; exited <- w.cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			w.mu.Lock()
			t.Errorf("watch did not exit 0 on SIGTERM: %v\n%s", err, w.stderr.String())
			w.mu.Unlock()
		}
	case <-time.After(10 * time.Second):
		_ = w.cmd.Process.Kill()
		<-exited
		t.Errorf("watch did not end within 10 s of SIGTERM")
	}
}

// next waits up to deadline for the next event of kind after those
// already returned, and returns it (nil when none came).
func (w *watcher) next(kind string, deadline time.Duration) *watchEvent {
	end := time.Now().Add(deadline)
	for {
		w.mu.Lock()
		for w.seen < len(w.events) {
			e := w.events[w.seen]
			w.seen++
			if e.Event == kind {
				w.mu.Unlock()
				return &e
			}
		}
		w.mu.Unlock()
		if time.Now().After(end) {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// since returns the events after the first n.
func (w *watcher) since(n int) []watchEvent {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]watchEvent(nil), w.events[n:]...)
}

func (w *watcher) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.events)
}

// TestWatchOnRealDocker runs watch against one Docker 28.5 host on the
// nft backend and one on legacy iptables:
//
//   - nft: a flush of nat DOCKER is reported within 2 s with the pid and
//     command that made it; container churn raises no drift; --fix
//     repairs the flush; a loop that keeps flushing stops the repairs
//     after --max-repairs and is named; the textfile passes promtool and a
//     real node_exporter serves it; SIGTERM ends watch with exit 0.
//   - legacy: the poll of the dump's hash sees the flush.
func TestWatchOnRealDocker(t *testing.T) {
	t.Run("nft", func(t *testing.T) {
		h := startDockerHost(t, "watchnft", "28.5", "nft", "on")
		textfiles, backups := t.TempDir(), t.TempDir()
		w := h.startWatch(t, "--fix", "--max-repairs", "2", "--repair-window", "10m", "--backup-dir", backups,
			"--textfile-dir", textfiles, "--listen", "127.0.0.1:0")
		if w.next("healthy", probeDeadline) == nil {
			t.Fatalf("watch never said healthy:\n%s", w.stderr.String())
		}

		t.Run("container churn raises no drift", func(t *testing.T) {
			n := w.count()
			h.docker(t, "run", "-d", "--name", "churn", "-p", "8099:80", "bb:local", "/bin/busybox", "httpd", "-f", "-p", "80", "-h", "/www")
			h.docker(t, "rm", "-f", "churn")
			h.docker(t, "network", "create", "churnnet")
			h.docker(t, "network", "rm", "churnnet")
			// Docker's quiet period (3 s) and a check after it.
			deadline := time.Now().Add(6 * time.Second)
			for time.Now().Before(deadline) {
				for _, e := range w.since(n) {
					if e.Event == "drift" || e.Event == "repaired" {
						t.Fatalf("Docker's own changes raised %s: %+v", e.Event, e)
					}
				}
				time.Sleep(100 * time.Millisecond)
			}
		})

		t.Run("a flush is seen within 2 s, attributed, and repaired", func(t *testing.T) {
			start := time.Now()
			h.ipt(t, "iptables", "-t", "nat", "-F", "DOCKER")
			d := w.next("drift", 10*time.Second)
			if d == nil {
				t.Fatal("no drift event for the flush")
			}
			took := time.Since(start)
			t.Logf("flush to drift event: %s", took.Round(time.Millisecond))
			if took > 2*time.Second {
				t.Errorf("the flush was reported after %s, want within 2 s", took)
			}
			if d.By == nil || d.By.PID == 0 || !strings.HasPrefix(d.By.Comm, "iptables") || d.Generation == 0 {
				t.Errorf("drift by %+v generation %d, want the iptables process and its generation", d.By, d.Generation)
			}
			if !strings.Contains(d.Message, "nat DOCKER") {
				t.Errorf("message %q does not name nat DOCKER", d.Message)
			}
			if w.next("repaired", probeDeadline) == nil || w.next("healthy", probeDeadline) == nil {
				t.Fatalf("no repaired and healthy after the flush:\n%s", w.stderr.String())
			}
			h.requireProbe(t)
		})

		t.Run("metrics pass promtool and node_exporter serves them", func(t *testing.T) {
			prom := filepath.Join(textfiles, "iptscope.prom")
			data, err := os.ReadFile(prom)
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"iptscope_up 1", `iptscope_repairs_total{result="ok"} 1`, `iptscope_port_reachable{container="web",host_ip="0.0.0.0",host_port="8080",proto="tcp"} 1`, "iptscope_last_run_timestamp_seconds "} {
				if !strings.Contains(string(data), want) {
					t.Errorf("textfile lacks %q:\n%s", want, data)
				}
			}
			promtoolCheck(t, data)
			w.mu.Lock()
			url := w.metrics
			w.mu.Unlock()
			if url == "" {
				t.Fatal("watch did not print its metrics address")
			}
			resp, err := http.Get(url)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.Contains(string(body), "iptscope_drift_events_total") {
				t.Errorf("/metrics: %s\n%s", resp.Status, body)
			}
			promtoolCheck(t, body)
			nodeExporterServes(t, textfiles)
		})

		t.Run("a loop that keeps flushing stops the repairs", func(t *testing.T) {
			// A hostile loop, bounded in count and time, in the host's
			// namespace with its backend and lock.
			loop := exec.Command("bash", script, "ipt", h.Name, "bash", "-c",
				`for i in $(seq 60); do iptables -t nat -F DOCKER; sleep 0.5; done`)
			loop.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			if err := loop.Start(); err != nil {
				t.Fatal(err)
			}
			killLoop := func() {
				_ = syscall.Kill(-loop.Process.Pid, syscall.SIGKILL)
				_ = loop.Wait()
			}
			t.Cleanup(killLoop)
			var stop *watchEvent
			for end := time.Now().Add(60 * time.Second); time.Now().Before(end) && stop == nil; {
				e := w.next("drift", time.Until(end))
				if e != nil && strings.Contains(e.Message, "repairs stopped") {
					stop = e
				}
			}
			if stop == nil {
				t.Fatalf("the repairs never stopped:\n%s", w.stderr.String())
			}
			if !strings.Contains(stop.Message, "iptables") || stop.By == nil {
				t.Errorf("the stop does not name who undoes the repairs: %+v", stop)
			}
			n := w.count()
			killLoop()
			// No repair after the stop, though the host stays broken.
			time.Sleep(2 * time.Second) // a window in which a repair would show
			for _, e := range w.since(n) {
				if e.Event == "repaired" {
					t.Errorf("repaired after the stop: %+v", e)
				}
			}
			data, _ := os.ReadFile(filepath.Join(textfiles, "iptscope.prom"))
			if !regexp.MustCompile(`iptscope_repairs_total\{result="limited"\} [1-9]`).Match(data) {
				t.Errorf("no limited repair counted:\n%s", data)
			}
			// Heal for the next subtest and the teardown.
			if _, stderr, code := h.iptscope(t, "doctor", "--netns", h.Name, "--docker-host", "unix://"+h.Socket, "--fix", "--yes", "--backup-dir", backups); code != 0 {
				t.Logf("doctor --fix after the loop: exit %d: %s", code, stderr)
			}
		})
		w.stop(t)
	})

	t.Run("legacy poll and node-problem-detector", func(t *testing.T) {
		npd := buildNPD(t)
		h := startDockerHost(t, "watchleg", "28.5", "legacy", "on")
		w := h.startWatch(t, "--interval", "1s")
		if w.next("healthy", probeDeadline) == nil {
			t.Fatalf("watch never said healthy:\n%s", w.stderr.String())
		}
		gauge := h.startNPD(t, npd)
		if !waitUntil(t, "NPD: DockerFirewallProblem false", probeDeadline, func() bool { return gauge() == "0" }) {
			t.Fatalf("NPD never saw a healthy host (problem_gauge %q)", gauge())
		}
		start := time.Now()
		h.ipt(t, "iptables", "-t", "nat", "-F", "DOCKER")
		if w.next("drift", 30*time.Second) == nil {
			t.Fatalf("the poll did not see the flush:\n%s", w.stderr.String())
		}
		t.Logf("legacy flush to drift event (1 s poll): %s", time.Since(start).Round(time.Millisecond))
		if !waitUntil(t, "NPD: DockerFirewallProblem true", probeDeadline, func() bool { return gauge() == "1" }) {
			t.Fatalf("NPD did not raise DockerFirewallProblem (problem_gauge %q)", gauge())
		}
		if _, stderr, code := h.iptscope(t, "doctor", "--netns", h.Name, "--docker-host", "unix://"+h.Socket, "--fix", "--yes", "--backup-dir", t.TempDir()); code != 0 {
			t.Fatalf("doctor --fix: exit %d: %s", code, stderr)
		}
		if w.next("healthy", 30*time.Second) == nil {
			t.Errorf("watch did not see the repair")
		}
		if !waitUntil(t, "NPD: DockerFirewallProblem false again", probeDeadline, func() bool { return gauge() == "0" }) {
			t.Errorf("NPD did not clear DockerFirewallProblem (problem_gauge %q)", gauge())
		}
		w.stop(t)
	})
}

// npdVersion is the node-problem-detector the e2e test runs.
const npdVersion = "v1.36.0"

// buildNPD builds node-problem-detector from the Go module proxy once per
// machine (about 3 minutes on 2 cores the first time) into the testbed's
// cache: a scratch module whose tools.go imports the command, so that
// `go mod tidy` keeps its dependencies.
func buildNPD(t *testing.T) string {
	t.Helper()
	root := os.Getenv("TESTBED_ROOT")
	if root == "" {
		root = "/tmp/iptscope-testbed"
	}
	dir := filepath.Join(root, ".cache", "npd-"+npdVersion)
	bin := filepath.Join(dir, "node-problem-detector")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"go.mod":   "module npdbuild\n\ngo 1.26.5\n",
		"tools.go": "//go:build tools\n\npackage tools\n\nimport _ \"k8s.io/node-problem-detector/cmd/nodeproblemdetector\"\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	for _, args := range [][]string{
		{"get", "k8s.io/node-problem-detector@" + npdVersion},
		{"mod", "tidy"},
		{"build", "-o", bin + ".tmp", "k8s.io/node-problem-detector/cmd/nodeproblemdetector"},
	} {
		cmd := exec.Command("go", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("building node-problem-detector: go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	if err := os.Rename(bin+".tmp", bin); err != nil {
		t.Fatal(err)
	}
	t.Logf("built node-problem-detector %s in %s", npdVersion, time.Since(start).Round(time.Second))
	return bin
}

// startNPD runs node-problem-detector standalone (no Kubernetes) with
// deploy/node-problem-detector/iptscope-monitor.json, its plugin pointed
// at this host and invoked every 2 s, on loopback in a namespace of its
// own; it returns a function that reads problem_gauge of
// DockerFirewallProblem from NPD's own metrics ("" when absent).
func (h *dockerHost) startNPD(t *testing.T, npd string) func() string {
	t.Helper()
	dir := t.TempDir()
	plugin := filepath.Join(dir, "iptscope-plugin")
	wrapper := fmt.Sprintf("#!/bin/sh\nexport PATH=%q XTABLES_LOCKFILE=%q\nexec %q \"$@\" --netns %q --docker-host %q\n",
		filepath.Join(h.State, "bin")+":"+os.Getenv("PATH"), filepath.Join(h.State, "xtables.lock"), iptscopeBin, h.Name, "unix://"+h.Socket)
	if err := os.WriteFile(plugin, []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("../deploy/node-problem-detector/iptscope-monitor.json")
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(string(data), `"/usr/local/bin/iptscope"`, fmt.Sprintf("%q", plugin), 1)
	cfg = strings.Replace(cfg, `"invoke_interval": "60s"`, `"invoke_interval": "2s"`, 1)
	if !strings.Contains(cfg, plugin) || !strings.Contains(cfg, `"2s"`) {
		t.Fatal("the monitor config no longer has the plugin path or interval the test rewrites")
	}
	mon := filepath.Join(dir, "iptscope-monitor.json")
	if err := os.WriteFile(mon, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	ns, path := netns(t)
	if out, err := exec.Command("ip", "-n", ns, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up: %v: %s", err, out)
	}
	cmd := exec.Command("nsenter", "--net="+path, npd, "--config.custom-plugin-monitor="+mon,
		"--enable-k8s-exporter=false", "--prometheus-address=127.0.0.1", "--prometheus-port=20257", "--hostname-override=iptscope-e2e")
	logs := &strings.Builder{}
	var mu sync.Mutex
	cmd.Stdout, cmd.Stderr = lockedWriter{&mu, logs}, lockedWriter{&mu, logs}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			mu.Lock()
			t.Logf("node-problem-detector's log:\n%s", logs.String())
			mu.Unlock()
		}
	})
	re := regexp.MustCompile(`(?m)^problem_gauge\{reason="[^"]*",type="DockerFirewallProblem"\} (\S+)$`)
	return func() string {
		out, err := exec.Command("nsenter", "--net="+path, "curl", "-sf", "http://127.0.0.1:20257/metrics").Output()
		if err != nil {
			return ""
		}
		// One series per reason: the condition is true when any is 1.
		val := ""
		for _, m := range re.FindAllStringSubmatch(string(out), -1) {
			if val == "" || m[1] == "1" {
				val = m[1]
			}
		}
		return val
	}
}

// lockedWriter serialises writes of two streams into one builder.
type lockedWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// promtoolCheck runs `promtool check metrics` on data (Debian's
// prometheus package).
func promtoolCheck(t *testing.T, data []byte) {
	t.Helper()
	_, err := exec.LookPath("promtool")
	require(t, err == nil, "promtool (apt-get install prometheus) is not installed")
	cmd := exec.Command("promtool", "check", "metrics")
	cmd.Stdin = strings.NewReader(string(data))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// nodeExporterServes runs Debian's prometheus-node-exporter with only
// the textfile collector on loopback inside a namespace of its own, and
// requires it to serve iptscope's metrics from dir.
func nodeExporterServes(t *testing.T, dir string) {
	t.Helper()
	bin, err := exec.LookPath("prometheus-node-exporter")
	require(t, err == nil, "prometheus-node-exporter (apt-get install prometheus-node-exporter) is not installed")
	ns, path := netns(t)
	if out, err := exec.Command("ip", "-n", ns, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up: %v: %s", err, out)
	}
	ne := exec.Command("nsenter", "--net="+path, bin, "--collector.disable-defaults", "--collector.textfile",
		"--collector.textfile.directory="+dir, "--web.listen-address=127.0.0.1:9100")
	var logs strings.Builder
	ne.Stdout, ne.Stderr = &logs, &logs
	if err := ne.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ne.Process.Kill(); _ = ne.Wait() }()
	var body string
	ok := waitUntil(t, "node_exporter serving the textfile", 30*time.Second, func() bool {
		out, err := exec.Command("nsenter", "--net="+path, "curl", "-sf", "http://127.0.0.1:9100/metrics").Output()
		body = string(out)
		return err == nil && strings.Contains(body, "iptscope_up 1")
	})
	if !ok {
		t.Fatalf("node_exporter did not serve iptscope_up:\n%s\n%s", body, logs.String())
	}
	if strings.Contains(body, "\nnode_textfile_scrape_error 1\n") {
		t.Errorf("node_exporter could not read the textfile:\n%s", grep(body, "textfile"))
	}
	if !strings.Contains(body, `iptscope_port_reachable{container="web",host_ip="0.0.0.0",host_port="8080",proto="tcp"} 1`) {
		t.Errorf("node_exporter does not serve the ports:\n%s", grep(body, "iptscope_port"))
	}
}

// TestWatchIdleCPUOnABigHost measures (it asserts nothing about speed)
// what watch costs while nothing changes on a host of about 100,000
// rules: a throwaway namespace loaded with internal/synth's Docker dump,
// on the nft backend (events) and on legacy (the hash poll at the default
// 30 s). It logs the CPU share of one core over three 30 s windows, and
// what one full check costs (paid again every --resync). Run it with
// IPTSCOPE_BENCH=1; it is not part of the suite.
func TestWatchIdleCPUOnABigHost(t *testing.T) {
	if os.Getenv("IPTSCOPE_BENCH") != "1" {
		t.Skip("a measurement, like the other IPTSCOPE_BENCH=1 timings: set IPTSCOPE_BENCH=1")
	}
	requireRoot(t, "iptables-nft-restore", "iptables-legacy-restore")
	dump, err := exec.Command("go", "run", "../hack/synth", "-kind", "docker", "-ports", "33000").Output()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("synthetic dump: %d rules", len(regexp.MustCompile(`(?m)^(\[[0-9]+:[0-9]+\] )?-A `).FindAllIndex(dump, -1)))
	for _, backend := range []string{"nft", "legacy"} {
		t.Run(backend, func(t *testing.T) {
			_, path := netns(t)
			lock := filepath.Join(t.TempDir(), "xtables.lock")
			restore := exec.Command("nsenter", "--net="+path, "iptables-"+backend+"-restore")
			restore.Env = append(os.Environ(), "XTABLES_LOCKFILE="+lock)
			restore.Stdin = strings.NewReader(string(dump))
			if out, err := restore.CombinedOutput(); err != nil {
				t.Fatalf("restore: %v: %s", err, out)
			}
			cmd := exec.Command(iptscopeBin, "watch", "--netns", path, "--docker-host", "unix://"+filepath.Join(t.TempDir(), "none.sock"), "-o", "json")
			cmd.Env = append(os.Environ(), "XTABLES_LOCKFILE="+lock)
			out, _ := cmd.StdoutPipe()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }()
			start := time.Now()
			sc := bufio.NewScanner(out)
			if !sc.Scan() {
				t.Fatal("watch printed nothing")
			}
			first := cpuTicks(t, cmd.Process.Pid)
			t.Logf("first check (collect + diagnose of the whole host): %s wall, %.2f s CPU", time.Since(start).Round(time.Millisecond), float64(first)/100)
			go func() {
				for sc.Scan() {
				}
			}()
			for i := range 3 {
				a, t0 := cpuTicks(t, cmd.Process.Pid), time.Now()
				time.Sleep(30 * time.Second) // the measurement window
				b, t1 := cpuTicks(t, cmd.Process.Pid), time.Now()
				t.Logf("window %d: %.2f %% of a core", i+1, 100*float64(b-a)/100/t1.Sub(t0).Seconds())
			}
		})
	}
}

// cpuTicks is a process's user and system time, its waited-for children's
// included, in clock ticks (USER_HZ, 100 on Linux).
func cpuTicks(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b)[strings.LastIndexByte(string(b), ')')+2:])
	var sum int64
	for _, i := range []int{11, 12, 13, 14} { // utime stime cutime cstime
		n, _ := strconv.ParseInt(f[i], 10, 64)
		sum += n
	}
	return sum
}

// TestWatchSoakOfThousandsOfRulesetChanges makes 5,000 nftables
// generations in a throwaway namespace (a table added and deleted each
// time, through netlink, as fast as the kernel takes them) while watch
// runs on it, and requires watch's open descriptors and threads to come
// back to where they were and its memory to stay bounded.
func TestWatchSoakOfThousandsOfRulesetChanges(t *testing.T) {
	requireRoot(t, "iptables-nft")
	_, path := netns(t)
	cmd := exec.Command(iptscopeBin, "watch", "--netns", path, "--docker-host", "unix://"+filepath.Join(t.TempDir(), "none.sock"), "-o", "json")
	out, _ := cmd.StdoutPipe()
	var errb strings.Builder
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	sc := bufio.NewScanner(out)
	if !sc.Scan() {
		t.Fatalf("watch printed nothing: %s", errb.String())
	}
	lines := make(chan string, 1024)
	go func() {
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
	}()
	pid := cmd.Process.Pid
	fds0, threads0, rss0 := procUsage(t, pid)
	cpu0 := cpuTicks(t, pid)

	const generations = 5000
	start := time.Now()
	makeGenerations(t, path, generations)
	t.Logf("%d generations in %s", generations, time.Since(start).Round(time.Millisecond))

	// Let watch take the burst and settle: its descriptors come back.
	var fds, threads int
	var rss int64
	waitUntil(t, "watch's descriptors back to their count", 30*time.Second, func() bool {
		fds, threads, rss = procUsage(t, pid)
		return fds <= fds0
	})
	t.Logf("before: %d fds, %d threads, %d kB RSS; after: %d fds, %d threads, %d kB RSS; %.2f s CPU for the burst", fds0, threads0, rss0, fds, threads, rss, float64(cpuTicks(t, pid)-cpu0)/100)
	for len(lines) > 0 {
		t.Logf("watch: %s", <-lines)
	}
	if fds > fds0 {
		t.Errorf("watch holds %d descriptors after the burst, %d before", fds, fds0)
	}
	if rss > rss0+64<<10 {
		t.Errorf("watch's RSS grew from %d kB to %d kB", rss0, rss)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("watch did not exit 0 on SIGTERM after the soak: %v\n%s", err, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Error("watch did not end within 10 s of SIGTERM")
	}
}

// makeGenerations commits n nftables generations in the namespace at
// path: `nft -f` of a script that adds and deletes a table n/2 times,
// each command its own transaction.
func makeGenerations(t *testing.T, path string, n int) {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		require(t, false, "nft (apt-get install nftables) is not installed")
	}
	// One nft process per batch of commands run with -f would be one
	// generation; `nft -i` reads commands one per line, each its own
	// commit.
	var script strings.Builder
	for i := 0; i < n/2; i++ {
		script.WriteString("add table ip soak\ndelete table ip soak\n")
	}
	c := exec.Command("nsenter", "--net="+path, "nft", "-i")
	c.Stdin = strings.NewReader(script.String())
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("nft -i: %v: %s", err, lastLines(string(out), 5))
	}
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// procUsage is a process's open descriptors, threads and resident memory
// (kB).
func procUsage(t *testing.T, pid int) (fds, threads int, rssKB int64) {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "Threads:":
			threads, _ = strconv.Atoi(f[1])
		case "VmRSS:":
			rssKB, _ = strconv.ParseInt(f[1], 10, 64)
		}
	}
	return len(ents), threads, rssKB
}

// watchV6Dump is a small ip6tables dump of Docker's shape, with a quoted
// comment and a mangle table, for the chain re-read test's IPv6 side.
const watchV6Dump = `*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j DOCKER-USER
-A FORWARD -o docker0 -j DOCKER
-A DOCKER -d fd00::2/128 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT
-A DOCKER-USER -j RETURN
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -s fd00::/64 ! -o docker0 -j MASQUERADE
-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination [fd00::2]:80
COMMIT
*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -m comment --comment "e2e: a \"quoted\" -c 1 2 -j x" -j MARK --set-xmark 0x1/0xffffffff
COMMIT
`

// TestWatchChainReadEqualsAFullRead loads a Docker-shaped ruleset of
// about 1,000 IPv4 rules and a small IPv6 one into a throwaway namespace
// with iptables-nft, then makes 40 random edits of one chain each
// (flush, delete, insert, append, replace, policy, zero counters). After
// each it requires that the kernel's event names exactly that chain as
// the only change, and that the chain's re-read spliced into the last
// snapshot (collect.ReadChains and SpliceChains, as watch does, each
// splice on top of the last) gives the iptables-nft dumps of a fresh full
// read: the same text and the same parsed model.
func TestWatchChainReadEqualsAFullRead(t *testing.T) {
	requireRoot(t, "iptables-nft-restore", "ip6tables-nft-restore", "nft")
	require(t, collect.CheckChainReads(context.Background(), collect.Options{}) == nil, "iptables-nft is older than 1.8.5")
	_, path := netns(t)
	if _, stderr, code := inNetns(t, path, string(synth.DockerHost(300)), "iptables-nft-restore"); code != 0 {
		t.Fatalf("iptables-nft-restore: %s", stderr)
	}
	if _, stderr, code := inNetns(t, path, watchV6Dump, "ip6tables-nft-restore"); code != 0 {
		t.Fatalf("ip6tables-nft-restore: %s", stderr)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o := collect.Options{NetNS: path, DockerHost: "unix://" + filepath.Join(t.TempDir(), "none.sock")}
	changes, err := collect.WatchNftables(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		for range changes {
		}
	}()
	prev := collect.Collect(ctx, o)
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rnd := rand.New(rand.NewSource(seed))
	for i := range 40 {
		c, args := randomChainEdit(t, rnd, prev, i)
		tool := "iptables-nft"
		if c.Family == snapshot.FamilyIPv6 {
			tool = "ip6tables-nft"
		}
		if _, stderr, code := inNetns(t, path, "", tool, args...); code != 0 {
			t.Fatalf("edit %d: %s %s: %s", i, tool, strings.Join(args, " "), stderr)
		}
		select {
		case ch := <-changes:
			if !ch.RulesOnly || !slices.Equal(ch.Chains, []watch.ChainRef{c}) {
				t.Errorf("edit %d (%s %s): the event says rules only %v of %v (%v), want %v", i, tool, strings.Join(args, " "), ch.RulesOnly, ch.Chains, ch.What, c)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("edit %d (%s %s): no nftables event", i, tool, strings.Join(args, " "))
		}
		ls, err := collect.ReadChains(ctx, o, []watch.ChainRef{c})
		if err != nil {
			t.Fatal(err)
		}
		spliced, err := collect.SpliceChains(prev, ls, time.Now())
		if err != nil {
			t.Fatalf("edit %d (%s %s): %v", i, tool, strings.Join(args, " "), err)
		}
		full := collect.Collect(ctx, o)
		for _, family := range []string{snapshot.FamilyIPv4, snapshot.FamilyIPv6} {
			got, err := spliced.PickDump(snapshot.BackendNFT, family)
			if err != nil {
				t.Fatal(err)
			}
			want, err := full.PickDump(snapshot.BackendNFT, family)
			if err != nil {
				t.Fatal(err)
			}
			if a, b := withoutComments(want.Raw), withoutComments(got.Raw); a != b {
				t.Fatalf("edit %d (%s %s): the spliced %s dump differs from a full read:\n%s", i, tool, strings.Join(args, " "), family, lineDiff(a, b))
			}
			a, _ := json.Marshal(want.Ruleset)
			b, _ := json.Marshal(got.Ruleset)
			if string(a) != string(b) {
				t.Fatalf("edit %d: the spliced %s model differs from a full read's", i, family)
			}
		}
		prev = spliced
	}
}

// withoutComments drops the "# Generated ... on DATE" lines of a dump.
func withoutComments(save string) string {
	var b strings.Builder
	for l := range strings.Lines(save) {
		if !strings.HasPrefix(l, "#") {
			b.WriteString(l)
		}
	}
	return b.String()
}

// randomChainEdit picks a chain of the snapshot's iptables-nft dumps and
// an edit of it that changes something: the chain and the iptables
// arguments.
func randomChainEdit(t *testing.T, rnd *rand.Rand, s *snapshot.Snapshot, n int) (watch.ChainRef, []string) {
	t.Helper()
	type cand struct {
		ref   watch.ChainRef
		chain *parse.Chain
	}
	var cands []cand
	for _, family := range []string{snapshot.FamilyIPv4, snapshot.FamilyIPv6} {
		d, err := s.PickDump(snapshot.BackendNFT, family)
		if err != nil {
			t.Fatal(err)
		}
		for _, tb := range d.Ruleset.Tables {
			for _, c := range tb.Chains {
				cands = append(cands, cand{watch.ChainRef{Family: family, Table: string(tb.Name), Chain: string(c.Name)}, c})
			}
		}
	}
	c := cands[rnd.Intn(len(cands))]
	rules := len(c.chain.Rules)
	src := fmt.Sprintf("192.0.2.%d/32", n%250+1)
	if c.ref.Family == snapshot.FamilyIPv6 {
		src = fmt.Sprintf("2001:db8::%x/128", n+1)
	}
	// Rules of several shapes: quoted text that looks like counters, a
	// target with options, a rule without a target.
	shapes := [][]string{
		{"-s", src, "-p", "tcp", "-m", "tcp", "--dport", strconv.Itoa(1000 + n), "-m", "comment", "--comment", fmt.Sprintf("e2e edit %d", n), "-j", "RETURN"},
		{"-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"},
		{"-p", "udp", "-m", "multiport", "--dports", "53,123", "-m", "comment", "--comment", `e2e "-c 1 2 -j x"`, "-j", "RETURN"},
		{"-m", "mark", "--mark", "0x1/0xff", "-j", "LOG", "--log-prefix", "e2e -c 3 4 "},
		{"-s", src},
	}
	rule := shapes[rnd.Intn(len(shapes))]
	base := []string{"-t", c.ref.Table}
	for {
		switch op := rnd.Intn(7); {
		case op == 0 && rules > 0:
			return c.ref, append(base, "-F", c.ref.Chain)
		case op == 1 && rules > 0:
			return c.ref, append(base, "-D", c.ref.Chain, strconv.Itoa(1+rnd.Intn(rules)))
		case op == 2:
			return c.ref, append(append(base, "-I", c.ref.Chain, strconv.Itoa(1+rnd.Intn(rules+1))), rule...)
		case op == 3:
			return c.ref, append(append(base, "-A", c.ref.Chain), rule...)
		case op == 4 && rules > 0:
			return c.ref, append(append(base, "-R", c.ref.Chain, strconv.Itoa(1+rnd.Intn(rules))), rule...)
		case op == 5 && c.chain.Builtin && c.ref.Table != "nat": // nat takes no DROP policy
			policy := "DROP"
			if c.chain.Policy == "DROP" {
				policy = "ACCEPT"
			}
			return c.ref, append(base, "-P", c.ref.Chain, policy)
		case op == 6 && c.chain.Builtin:
			return c.ref, append(base, "-Z", c.ref.Chain)
		}
	}
}

// TestWatchChainReadOnABigHost measures (it asserts nothing about speed)
// what a check's read costs after a change of one chain, on a namespace of
// internal/synth's 100,000 rules with iptables-nft: the full read
// (HostStateHash and collect.Collect: iptables-nft-save and nft's two
// listings) against the single-chain read (HostStateHash,
// collect.ReadChains and SpliceChains), for the 3-rule chain filter
// DOCKER-USER and the 33,000-rule nat DOCKER; wall time and CPU (the
// test's and its children's), medians of several runs. Then, on a real
// Docker 28.5 host (nft) carrying 100,000 more rules in chains of their
// own, how long from a flush of nat DOCKER to watch's drift event. Run it
// with IPTSCOPE_BENCH=1; it is not part of the suite.
func TestWatchChainReadOnABigHost(t *testing.T) {
	if os.Getenv("IPTSCOPE_BENCH") != "1" {
		t.Skip("a measurement, like the other IPTSCOPE_BENCH=1 timings: set IPTSCOPE_BENCH=1")
	}
	requireRoot(t, "iptables-nft-restore", "nft")
	t.Run("re-read after a change of one chain", func(t *testing.T) {
		_, path := netns(t)
		if _, stderr, code := inNetns(t, path, string(synth.DockerHost(33000)), "iptables-nft-restore"); code != 0 {
			t.Fatalf("iptables-nft-restore: %s", stderr)
		}
		ctx := context.Background()
		o := collect.Options{NetNS: path, DockerHost: "unix://" + filepath.Join(t.TempDir(), "none.sock")}
		var prev *snapshot.Snapshot
		var fullWall, fullCPU []time.Duration
		for range 3 {
			wall, cpu := measure(func() {
				if _, err := collect.HostStateHash(ctx, o); err != nil {
					t.Fatal(err)
				}
				prev = collect.Collect(ctx, o)
			})
			fullWall, fullCPU = append(fullWall, wall), append(fullCPU, cpu)
		}
		t.Logf("full read: %s wall, %s CPU (medians of %d: %v)", median(fullWall), median(fullCPU), len(fullWall), fullWall)
		start := time.Now()
		rep := diagnose.NewReport(prev, diagnose.ReportOptions{Source: "live"})
		t.Logf("doctor on it (the same after either read): %s, %d findings", time.Since(start).Round(time.Millisecond), len(rep.Findings))
		for _, c := range []struct {
			table, chain string
			edit         []string
		}{
			{"filter", "DOCKER-USER", []string{"-I", "DOCKER-USER", "-s", "192.0.2.1", "-j", "DROP"}},
			{"nat", "DOCKER", []string{"-D", "DOCKER", "1"}},
		} {
			ref := watch.ChainRef{Family: snapshot.FamilyIPv4, Table: c.table, Chain: c.chain}
			var walls, cpus []time.Duration
			for range 7 {
				if _, stderr, code := inNetns(t, path, "", "iptables-nft", append([]string{"-t", c.table}, c.edit...)...); code != 0 {
					t.Fatalf("edit: %s", stderr)
				}
				var next *snapshot.Snapshot
				wall, cpu := measure(func() {
					if _, err := collect.HostStateHash(ctx, o); err != nil {
						t.Fatal(err)
					}
					ls, err := collect.ReadChains(ctx, o, []watch.ChainRef{ref})
					if err == nil {
						next, err = collect.SpliceChains(prev, ls, time.Now())
					}
					if err != nil {
						t.Fatal(err)
					}
				})
				prev = next
				walls, cpus = append(walls, wall), append(cpus, cpu)
			}
			d, _ := prev.PickDump(snapshot.BackendNFT, snapshot.FamilyIPv4)
			t.Logf("single-chain read of %s %s (%d rules): %s wall, %s CPU (medians of %d: %v)", c.table, c.chain,
				len(d.Ruleset.Table(parse.TableName(c.table)).Chain(parse.ChainName(c.chain)).Rules), median(walls), median(cpus), len(walls), walls)
		}
	})

	t.Run("flush to drift on a real Docker host of 100,000 rules", func(t *testing.T) {
		h := startDockerHost(t, "watchbig", "28.5", "nft", "on")
		var bulk strings.Builder
		for _, table := range []string{"filter", "nat"} {
			fmt.Fprintf(&bulk, "*%s\n:WATCH-BULK - [0:0]\n", table)
			for i := range 50000 {
				fmt.Fprintf(&bulk, "-A WATCH-BULK -s 10.%d.%d.%d/32 -p tcp -m tcp --dport %d -j RETURN\n", 200+i/65536, i/256%256, i%256, 1024+i%60000)
			}
			bulk.WriteString("COMMIT\n")
		}
		h.restoreNoflush(t, "iptables-nft-restore", bulk.String())
		w := h.startWatch(t, "--verbose")
		if w.next("healthy", 5*time.Minute) == nil {
			t.Fatalf("watch never said healthy:\n%s", w.stderr.String())
		}
		first := w.lastCheck(t)
		t.Logf("first check: %s", first.line)
		// The next check waits as long as the last one took (Machine.Spent).
		time.Sleep(first.took + time.Second)
		saved := h.ipt(t, "iptables", "-t", "nat", "-S", "DOCKER")
		var restore strings.Builder
		restore.WriteString("*nat\n")
		for _, l := range strings.Split(saved, "\n") {
			if strings.HasPrefix(l, "-A ") {
				restore.WriteString(l + "\n")
			}
		}
		restore.WriteString("COMMIT\n")
		var lat []time.Duration
		for i := range 5 {
			start := time.Now()
			h.ipt(t, "iptables", "-t", "nat", "-F", "DOCKER")
			if w.next("drift", 60*time.Second) == nil {
				t.Fatalf("no drift for flush %d:\n%s", i+1, w.stderr.String())
			}
			lat = append(lat, time.Since(start))
			c := w.lastCheck(t)
			t.Logf("flush %d: drift after %s; %s", i+1, lat[i].Round(time.Millisecond), c.line)
			h.restoreNoflush(t, "iptables-nft-restore", restore.String())
			if w.next("healthy", 60*time.Second) == nil {
				t.Fatalf("not healthy after the rules came back:\n%s", w.stderr.String())
			}
			c = w.lastCheck(t)
			time.Sleep(c.took + time.Second)
		}
		t.Logf("flush to drift event: median %s of %v", median(lat), lat)
		w.stop(t)
	})
}

// restoreNoflush feeds payload to `tool --noflush` in the host's
// namespace.
func (h *dockerHost) restoreNoflush(t *testing.T, tool, payload string) {
	t.Helper()
	cmd := exec.Command("bash", script, "ipt", h.Name, tool, "--noflush")
	cmd.Stdin = strings.NewReader(payload)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s --noflush: %v: %s", tool, err, out)
	}
}

// checkLine is one "iptscope: check: ..." line of watch --verbose.
type checkLine struct {
	line string
	took time.Duration // the read and the diagnosis
}

var checkLineRE = regexp.MustCompile(`iptscope: check: (.*) in (\S+), diagnosed in (\S+)`)

// lastCheck is the last check watch --verbose reported.
func (w *watcher) lastCheck(t *testing.T) checkLine {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	ms := checkLineRE.FindAllStringSubmatch(w.stderr.String(), -1)
	if len(ms) == 0 {
		t.Fatalf("watch --verbose reported no check:\n%s", w.stderr.String())
	}
	m := ms[len(ms)-1]
	read, err1 := time.ParseDuration(m[2])
	diag, err2 := time.ParseDuration(m[3])
	if err1 != nil || err2 != nil {
		t.Fatalf("check line %q: %v %v", m[0], err1, err2)
	}
	return checkLine{line: m[0], took: read + diag}
}

// measure runs f and returns its wall time and the CPU (user and system)
// the test process and the children it waited for spent meanwhile.
func measure(f func()) (wall, cpu time.Duration) {
	var s0, c0, s1, c1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &s0)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &c0)
	start := time.Now()
	f()
	wall = time.Since(start)
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &s1)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &c1)
	tv := func(t syscall.Timeval) time.Duration { return time.Duration(t.Nano()) }
	cpu = tv(s1.Utime) - tv(s0.Utime) + tv(s1.Stime) - tv(s0.Stime) + tv(c1.Utime) - tv(c0.Utime) + tv(c1.Stime) - tv(c0.Stime)
	return wall, cpu
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2].Round(time.Millisecond)
}
