// Package diagnose compares what Docker would have written into netfilter
// with what a snapshot holds, and says what is broken.
//
// It is pure: a *snapshot.Snapshot in, findings out. No exec, no /proc, no
// netlink, no sockets.
//
// Two layers:
//
//   - Expect derives, from the snapshot's Docker view (version, networks,
//     containers, published ports, userland-proxy mode), the rules Docker
//     itself writes, per table and chain, in Docker's order (expected.go).
//     Compare matches them with a parsed dump by Rule.Spec().
//   - Checks (one per file, see All) turn the differences and the host
//     state (sysctls, links, docker-proxy processes) into Findings with a
//     stable ID, a severity, evidence and a fix. docs/checks/<id>.md
//     documents each.
package diagnose
