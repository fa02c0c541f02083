package collect

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/iptscope/iptscope/watch"
)

// DockerEvents streams Docker's own events that rewrite rules (container
// start, die, stop; network create, destroy, connect, disconnect) from the
// Engine API's /events, over the same plain net/http client as Collect.
// The channel is closed when ctx is done. When the stream breaks (dockerd
// restarting) it reconnects with a back-off of up to 30 s, and sends a
// DockerEvent of Type "daemon" Action "reconnect" after each reconnection:
// what happened in between is Docker's work as well.
func DockerEvents(ctx context.Context, host string) (<-chan watch.DockerEvent, error) {
	if host == "" {
		host = os.Getenv("DOCKER_HOST")
	}
	if host == "" {
		host = DefaultDockerHost
	}
	c, err := newDockerClient(host)
	if err != nil {
		return nil, err
	}
	out := make(chan watch.DockerEvent, 64)
	go func() {
		defer close(out)
		defer c.hc.CloseIdleConnections()
		backoff := time.Second
		for first := true; ; first = false {
			connected, err := c.streamEvents(ctx, out, !first)
			if ctx.Err() != nil {
				return
			}
			if connected {
				backoff = time.Second
			}
			_ = err // the next connection tells; watch's interval re-check covers the gap
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 30*time.Second)
		}
	}()
	return out, nil
}

// dockerEventsFilter is the /events filter: only what changes rules.
var dockerEventsFilter = func() string {
	f, _ := json.Marshal(map[string][]string{
		"type":  {"container", "network"},
		"event": {"start", "die", "stop", "kill", "restart", "create", "destroy", "connect", "disconnect"},
	})
	return url.QueryEscape(string(f))
}()

// dockerMessage is the part of an /events message watch reads.
type dockerMessage struct {
	Type   string `json:"Type"`
	Action string `json:"Action"`
	Actor  struct {
		ID         string            `json:"ID"`
		Attributes map[string]string `json:"Attributes"`
	} `json:"Actor"`
	TimeNano int64 `json:"timeNano"`
}

// streamEvents reads one /events stream until it ends or ctx is done;
// connected says whether the daemon answered.
func (c *dockerClient) streamEvents(ctx context.Context, out chan<- watch.DockerEvent, reconnected bool) (connected bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/events?filters="+dockerEventsFilter, nil)
	if err != nil {
		return false, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return false, fmt.Errorf("GET /events: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("GET /events: %s", resp.Status)
	}
	send := func(e watch.DockerEvent) bool {
		select {
		case out <- e:
			return true
		case <-ctx.Done():
			return false
		}
	}
	if reconnected && !send(watch.DockerEvent{Time: time.Now(), Type: "daemon", Action: "reconnect"}) {
		return true, nil
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var m dockerMessage
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			continue
		}
		e := watch.DockerEvent{Time: time.Unix(0, m.TimeNano), Type: m.Type, Action: m.Action, Actor: m.Actor.Attributes["name"]}
		if e.Actor == "" {
			e.Actor = m.Actor.ID
		}
		if !send(e) {
			return true, nil
		}
	}
	return true, sc.Err()
}

// PollRules polls the rules of a backend ("legacy": legacy iptables has
// no event stream) every interval in the namespace named as Options.NetNS
// names it, and sends a Change when they changed. The dump is read
// without counters and with the counters of the chain headers and the
// comment lines taken out, so that traffic does not count as a change.
//
// Why not a dump each time: on a host of 100,000 rules iptables-save costs
// a third of a second of CPU. For the legacy backend (with Options.Runner
// nil: the real host) each poll first asks the kernel the tables' getinfo
// headers (rule count, size, hook offsets; legacyTablesInfo), a few system
// calls; the dump is hashed only when they changed, and every
// fullHashEvery polls whatever happens (a rule replaced by one of the
// same size changes no header). The channel is closed when ctx is done.
func PollRules(ctx context.Context, o Options, backend string, interval time.Duration) <-chan watch.Change {
	r := o.Runner
	cheap := backend == "legacy" && r == nil
	if r == nil {
		r = ExecRunner{Env: o.Env}
	}
	out := make(chan watch.Change, 1)
	go func() {
		defer close(out)
		var last [sha256.Size]byte
		var lastErr, lastInfo string
		t := time.NewTicker(interval)
		defer t.Stop()
		for n := 0; ; n++ {
			var sum [sha256.Size]byte
			var err error
			skip := false
			if cheap {
				info, ierr := legacyTablesInfo(o.NetNS)
				skip = ierr == nil && n > 0 && n%fullHashEvery != 0 && info == lastInfo && lastErr == ""
				if ierr == nil {
					lastInfo = info
				}
			}
			if !skip {
				sum, err = hashRules(ctx, r, o.NetNS, backend)
			}
			if ctx.Err() != nil {
				return
			}
			var c *watch.Change
			switch {
			case skip:
			case err != nil && err.Error() != lastErr:
				lastErr = err.Error()
				c = &watch.Change{Time: time.Now(), Source: "poll", Err: err}
			case err == nil:
				lastErr = ""
				if n > 0 && sum != last {
					c = &watch.Change{Time: time.Now(), Source: "poll", What: []string{backend + " rules changed"}}
				}
				last = sum
			}
			if c != nil {
				select {
				case out <- *c:
				case <-ctx.Done():
					return
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return out
}

// fullHashEvery is how many polls of the legacy headers go by before the
// dump is hashed anyway.
const fullHashEvery = 10

// hashRules hashes both families' dumps of a backend, without counters.
func hashRules(ctx context.Context, r Runner, netns, backend string) ([sha256.Size]byte, error) {
	h := sha256.New()
	err := InNetNS(netns, func() error {
		for _, f := range []Family{IPv4, IPv6} {
			name := SaveCommand(f, backend)
			b, err := r.Run(ctx, name, nil, nil)
			if err != nil {
				if f == IPv6 {
					continue // no ip6tables: IPv4 alone decides
				}
				return fmt.Errorf("polling rules: %w", err)
			}
			fmt.Fprintf(h, "%s\n", f)
			writeStableDump(h, string(b))
		}
		return nil
	})
	var sum [sha256.Size]byte
	copy(sum[:], h.Sum(nil))
	return sum, err
}

// writeStableDump writes an iptables-save dump without what changes with
// time and traffic: "# Generated ... on DATE" comments and the
// "[packets:bytes]" of the chain headers.
func writeStableDump(w interface{ Write([]byte) (int, error) }, dump string) {
	for line := range strings.Lines(dump) {
		if strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, ":") {
			if i := strings.LastIndexByte(line, '['); i > 0 {
				line = line[:i] + "\n"
			}
		}
		_, _ = w.Write([]byte(line))
	}
}
