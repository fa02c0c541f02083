package diagnose

import (
	"fmt"

	"github.com/iptscope/iptscope/snapshot"

	"github.com/iptscope/iptscope/trace"
)

// One judgement: the ports table's path is the packet-path engine's
// (package trace), which walks the host's actual rules hook by hook and
// is held to the kernel's own trace (e2e/trace_*_test.go). The engine
// answers for a SYN from another machine on the uplink; it says unknown
// when it cannot follow the packet (a raw dump has no addresses or routes,
// a match it does not model, no uplink). Then, and only then, the path is
// the one read from Docker's expected rules (judgePort), which also
// explains every path the two agree on in Docker's terms (which rule is
// missing, which finding is the cause). On every fixture bundle the two
// agree (TestEngineAndExpectedRulesAgreeOnEveryFixture, and
// trace.TestPortsAgreeWithTheDiagnosePortsTable against live probes).

// PortsByExpectedRules is Ports read from Docker's expected rules alone,
// without the engine: what the engine is compared with in tests.
func PortsByExpectedRules(s *snapshot.Snapshot) []PortReport {
	env := NewEnv(s)
	env.noTrace = true
	return portsOf(env)
}

// tracedKey names one binding in both tables.
type tracedKey struct {
	container, hostIP, proto string
	hostPort, containerPort  int
}

// portVerdicts is the engine's judgement of every published port, built
// once per Env.
func (e *Env) portVerdicts() map[tracedKey]trace.PortVerdict {
	e.traceOnce.Do(func() {
		// Why not when Docker answered from another namespace: the
		// engine would take that daemon's containers for this one's.
		if e.S == nil || e.S.Docker == nil || e.RulesOnly || e.noTrace || dockerElsewhere(e.S) != "" {
			return
		}
		vs := trace.New(e.S).Ports()
		e.traced = make(map[tracedKey]trace.PortVerdict, len(vs))
		for _, v := range vs {
			k := tracedKey{v.Container, hostIPOf(v.HostIP), v.Proto, v.HostPort, v.ContainerPort}
			if _, dup := e.traced[k]; !dup {
				e.traced[k] = v
			}
		}
	})
	return e.traced
}

func hostIPOf(ip string) string {
	if ip == "" {
		return "0.0.0.0"
	}
	return ip
}

// traced gives row r the engine's path when the engine decides it and
// differs from the expected rules' reading, with the engine's reason and
// deciding rule. It reports whether it changed the row.
func traced(env *Env, r *PortReport) bool {
	v, ok := env.portVerdicts()[tracedKey{r.Container, hostIPOf(r.HostIP), r.Proto, r.HostPort, r.ContainerPort}]
	if !ok || v.Path == trace.PortUnknown || string(v.Path) == string(r.Path) {
		return false
	}
	was := r.Path
	r.Path = PortPath(v.Path)
	r.Reason = "traced: " + v.Reason
	if d := v.Deciding(); d != nil && d.Rule > 0 {
		r.Reason += ": " + d.Text
	}
	r.Reason += fmt.Sprintf("; Docker's expected rules alone would say %s", was)
	return true
}
