// Package validate checks the files under deploy/ with the parsers of
// the programs that read them: node-problem-detector's own config types
// (k8s.io/node-problem-detector v1.36.0), the Kubernetes API types
// (k8s.io/api, decoded strictly: an unknown or misspelt field fails),
// and systemd-analyze verify for the unit. It is a module of its own so
// that none of this enters iptscope's binary or go.mod.
package validate

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"encoding/json"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	cpmtypes "k8s.io/node-problem-detector/pkg/custompluginmonitor/types"
	"sigs.k8s.io/yaml"
)

func TestTheNPDMonitorConfigParsesAsNPDParsesIt(t *testing.T) {
	data, err := os.ReadFile("../node-problem-detector/iptscope-monitor.json")
	if err != nil {
		t.Fatal(err)
	}
	// What NPD's custom plugin monitor does with the file
	// (pkg/custompluginmonitor/custom_plugin_monitor.go): json.Unmarshal,
	// ApplyConfiguration, Validate. Unknown fields are a typo here.
	var cfg cpmtypes.CustomPluginConfig
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		t.Fatalf("decoding: %v", err)
	}
	if err := cfg.ApplyConfiguration(); err != nil {
		t.Fatalf("ApplyConfiguration: %v", err)
	}
	if len(cfg.Rules) != 1 || cfg.Rules[0].Path != "/usr/local/bin/iptscope" {
		t.Fatalf("want one rule running /usr/local/bin/iptscope, got %+v", cfg.Rules)
	}
	r := cfg.Rules[0]
	if r.Condition != "DockerFirewallProblem" || !slices.Contains(r.Args, "npd") {
		t.Errorf("rule %+v: want condition DockerFirewallProblem and doctor -o npd", r)
	}
	if *cfg.PluginGlobalConfig.MaxOutputLength < 80 {
		t.Errorf("max_output_length %d cuts iptscope's 80-byte line", *cfg.PluginGlobalConfig.MaxOutputLength)
	}
	if *cfg.PluginGlobalConfig.InvokeInterval < 30*time.Second {
		t.Errorf("invoke_interval %s: a full check every few seconds is wasteful", *cfg.PluginGlobalConfig.InvokeInterval)
	}
	// Validate stats the plugin path: point it at a stand-in.
	stand := filepath.Join(t.TempDir(), "iptscope")
	if err := os.WriteFile(stand, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	r.Path = stand
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestTheDaemonSetDecodesStrictlyIntoTheAPITypes(t *testing.T) {
	data, err := os.ReadFile("../kubernetes/daemonset.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var ds appsv1.DaemonSet
	if err := yaml.UnmarshalStrict(data, &ds); err != nil {
		t.Fatalf("strict decoding: %v", err)
	}
	if ds.APIVersion != "apps/v1" || ds.Kind != "DaemonSet" {
		t.Errorf("apiVersion %q kind %q", ds.APIVersion, ds.Kind)
	}
	spec := ds.Spec.Template.Spec
	if !spec.HostNetwork || !spec.HostPID {
		t.Error("the pod must share the node's network and PID namespaces")
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(spec.Containers))
	}
	c := spec.Containers[0]
	if c.Args[0] != "watch" {
		t.Errorf("args %v, want iptscope watch", c.Args)
	}
	sc := c.SecurityContext
	if sc == nil || sc.Privileged != nil && *sc.Privileged || sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		t.Error("want an unprivileged container that drops ALL capabilities and adds what it needs")
	} else {
		for _, want := range []string{"NET_ADMIN", "NET_RAW"} {
			if !slices.ContainsFunc(sc.Capabilities.Add, func(c corev1.Capability) bool { return string(c) == want }) {
				t.Errorf("capability %s not added", want)
			}
		}
	}
	if c.Resources.Limits.Memory().IsZero() || c.Resources.Limits.Cpu().IsZero() {
		t.Error("want CPU and memory limits")
	}
	if ds.Spec.Selector == nil || ds.Spec.Selector.MatchLabels["app.kubernetes.io/name"] != ds.Spec.Template.Labels["app.kubernetes.io/name"] {
		t.Error("the selector does not match the template's labels")
	}
}

func TestTheSystemdUnitVerifies(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("IPTSCOPE_E2E") == "1" {
			t.Fatal("systemd-analyze is not installed")
		}
		t.Skip("systemd-analyze is not installed")
	}
	// verify wants the ExecStart binary to exist: a copy of the unit
	// pointing at a stand-in, in a folder of its own.
	data, err := os.ReadFile("../systemd/iptscope-watch.service")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	stand := filepath.Join(dir, "iptscope")
	if err := os.WriteFile(stand, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	unit := filepath.Join(dir, "iptscope-watch.service")
	if err := os.WriteFile(unit, []byte(strings.ReplaceAll(string(data), "/usr/local/bin/iptscope", stand)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sa, "verify", unit).CombinedOutput()
	if err != nil || strings.Contains(string(out), "iptscope-watch.service:") {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
