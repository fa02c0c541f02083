package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/iptscope/iptscope/diagnose"
	"github.com/iptscope/iptscope/docs"
	"github.com/iptscope/iptscope/render"
	"github.com/iptscope/iptscope/snapshot"
	"github.com/iptscope/iptscope/watch"
)

const schemaBase = "https://github.com/iptscope/iptscope/docs/schema/"

var (
	schemasOnce sync.Once
	schemas     map[string]*jsonschema.Schema
	schemasErr  error
)

// compiledSchemas compiles every schema embedded in the binary (so the
// files and what is embedded cannot differ), with formats (date-time)
// asserted; Compile also checks each against the 2020-12 meta-schema.
func compiledSchemas(t *testing.T) map[string]*jsonschema.Schema {
	t.Helper()
	schemasOnce.Do(func() {
		c := jsonschema.NewCompiler()
		c.AssertFormat()
		files, err := fs.Glob(docs.Schemas, "schema/*.json")
		if err != nil || len(files) == 0 {
			schemasErr = err
			return
		}
		for _, f := range files {
			data, err := fs.ReadFile(docs.Schemas, f)
			if err != nil {
				schemasErr = err
				return
			}
			doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
			if err != nil {
				schemasErr = err
				return
			}
			if err := c.AddResource(schemaBase+path.Base(f), doc); err != nil {
				schemasErr = err
				return
			}
		}
		schemas = map[string]*jsonschema.Schema{}
		for _, f := range files {
			s, err := c.Compile(schemaBase + path.Base(f))
			if err != nil {
				schemasErr = err
				return
			}
			schemas[path.Base(f)] = s
		}
	})
	if schemasErr != nil {
		t.Fatalf("compiling docs/schema: %v", schemasErr)
	}
	return schemas
}

// validate checks one JSON document against docs/schema/<name>.
func validate(t *testing.T, name, doc string) {
	t.Helper()
	s, ok := compiledSchemas(t)[name]
	if !ok {
		t.Fatalf("no schema %s", name)
	}
	v, err := jsonschema.UnmarshalJSON(strings.NewReader(doc))
	if err != nil {
		t.Fatalf("the output is not JSON: %v", err)
	}
	if err := s.Validate(v); err != nil {
		t.Errorf("does not match %s: %v", name, err)
	}
}

// runJSON runs a command that writes JSON and returns its output. Every
// exit code is fine here (doctor writes its report for 1 and for a
// partial 2 as well): only no output is not.
func runJSON(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := iptscope(t, "", args...)
	if out == "" {
		t.Fatalf("%v: exit %d: %s", args, code, errOut)
	}
	return out
}

func TestSchemasNameTheirDocuments(t *testing.T) {
	for file, want := range map[string]string{
		"doctor.v1.json":   diagnose.ReportSchema,
		"fix.v1.json":      "iptscope.fix/v1",
		"snapshot.v1.json": snapshot.Schema,
		"rules.v1.json":    render.RulesSchema,
		"graph.v1.json":    "iptscope.graph/v1",
		"checks.v1.json":   render.ChecksSchema,
		"version.v1.json":  versionSchema,
		"trace.v1.json":    "iptscope.trace/v1",
		"watch.v1.json":    watch.Schema,
	} {
		data, err := os.ReadFile(filepath.Join("../../docs/schema", file))
		if err != nil {
			t.Fatal(err)
		}
		var s struct {
			ID         string `json:"$id"`
			Properties struct {
				Schema struct {
					Const string `json:"const"`
				} `json:"schema"`
			} `json:"properties"`
		}
		if err := json.Unmarshal(data, &s); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if s.ID != schemaBase+file || s.Properties.Schema.Const != want {
			t.Errorf("%s: $id %q, schema const %q, want %q", file, s.ID, s.Properties.Schema.Const, want)
		}
	}
	if n := len(compiledSchemas(t)); n != 9 {
		t.Errorf("%d schemas embedded, want 9", n)
	}
}

func TestJSONOutputMatchesTheSchemas(t *testing.T) {
	bundles, _ := filepath.Glob("../../fixtures/*/bundle.json")
	if len(bundles) == 0 {
		t.Fatal("no bundles under fixtures/")
	}
	for _, b := range bundles {
		name := filepath.Base(filepath.Dir(b))
		t.Run(name+" bundle", func(t *testing.T) {
			data, err := os.ReadFile(b)
			if err != nil {
				t.Fatal(err)
			}
			validate(t, "snapshot.v1.json", string(data))
			validate(t, "doctor.v1.json", runJSON(t, "doctor", "--from", b, "-o", "json"))
			validate(t, "fix.v1.json", runJSON(t, "doctor", "--from", b, "-o", "json", "--fix", "--dry-run"))
		})
	}
	for _, dir := range fixtureDirs(t) {
		name := filepath.Base(dir)
		save := filepath.Join(dir, "iptables-save.txt")
		t.Run(name+" raw dump", func(t *testing.T) {
			validate(t, "doctor.v1.json", runJSON(t, "doctor", "--from", save, "-o", "json"))
			validate(t, "fix.v1.json", runJSON(t, "doctor", "--from", save, "-o", "json", "--fix", "--dry-run"))
			validate(t, "rules.v1.json", runJSON(t, "dump", "--from", save, "-o", "json"))
			validate(t, "graph.v1.json", runJSON(t, "graph", "--from", save, "--format", "json"))
			if list := filepath.Join(dir, "nat.list.txt"); fileExists(list) {
				validate(t, "rules.v1.json", runJSON(t, "dump", "--from", list, "-o", "json"))
			}
			if v6 := filepath.Join(dir, "ip6tables-save.txt"); nonEmpty(v6) {
				validate(t, "rules.v1.json", runJSON(t, "dump", "--from", v6, "-o", "json"))
			}
		})
	}
	t.Run("checks and version", func(t *testing.T) {
		validate(t, "checks.v1.json", runJSON(t, "checks", "-o", "json"))
		validate(t, "version.v1.json", runJSON(t, "version", "-o", "json"))
	})
	t.Run("trace of every bundle's published port and of a raw dump", func(t *testing.T) {
		for _, b := range bundles {
			var snap struct {
				Addrs []struct{ Link, CIDR string } `json:"addrs"`
			}
			data, err := os.ReadFile(b)
			if err != nil || json.Unmarshal(data, &snap) != nil {
				t.Fatalf("%s: %v", b, err)
			}
			dst := "127.0.0.1"
			for _, a := range snap.Addrs {
				if a.Link == "tbhost0" && strings.Contains(a.CIDR, ".") {
					dst, _, _ = strings.Cut(a.CIDR, "/")
				}
			}
			validate(t, "trace.v1.json", runJSON(t, "trace", "--from", b, "--src", "198.51.100.7", "--in", "tbhost0", "--dst", dst, "--dport", "8080", "-o", "json"))
			validate(t, "trace.v1.json", runJSON(t, "trace", "--from", b, "--src", "127.0.0.1", "--dst", "127.0.0.1", "--dport", "9090", "-o", "json"))
		}
		save := filepath.Join(fixtureDirs(t)[0], "iptables-save.txt")
		validate(t, "trace.v1.json", runJSON(t, "trace", "--from", save, "--src", "198.51.100.7", "--in", "eth0", "--dst", "198.51.100.1", "--dport", "8080", "-o", "json"))
	})
	t.Run("watch's events", func(t *testing.T) {
		for _, e := range watchSchemaEvents() {
			b, err := json.Marshal(e)
			if err != nil {
				t.Fatal(err)
			}
			validate(t, "watch.v1.json", string(b))
		}
	})
	t.Run("the draft trace example", func(t *testing.T) {
		data, err := os.ReadFile("testdata/trace-v1-example.json")
		if err != nil {
			t.Fatal(err)
		}
		validate(t, "trace.v1.json", string(data))
	})
}

// TestSchemasRejectWhatIsWrong makes sure the schemas are not vacuous:
// each document broken in one way must fail.
func TestSchemasRejectWhatIsWrong(t *testing.T) {
	b := filepath.Join(fixtureDirs(t)[0], "iptables-save.txt")
	doctor := runJSON(t, "doctor", "--from", b, "-o", "json")
	for _, c := range []struct {
		name, schema, doc string
		edit              func(map[string]any)
	}{
		{"a report without status", "doctor.v1.json", doctor, func(m map[string]any) { delete(m, "status") }},
		{"an unknown status", "doctor.v1.json", doctor, func(m map[string]any) { m["status"] = "fine" }},
		{"a finding without an id", "doctor.v1.json", doctor, func(m map[string]any) {
			m["findings"] = []any{map[string]any{"severity": "info", "title": "t", "detail": "", "subject": map[string]any{}, "fix": ""}}
		}},
		{"a finding of an unknown severity", "doctor.v1.json", doctor, func(m map[string]any) {
			m["findings"] = []any{map[string]any{"id": "x", "severity": "fatal", "title": "t", "detail": "", "subject": map[string]any{}, "fix": ""}}
		}},
		{"a host with a field of the wrong type", "doctor.v1.json", doctor, func(m map[string]any) { m["host"].(map[string]any)["hostname"] = 7 }},
		{"a trace step without its rule", "trace.v1.json", `{"schema":"iptscope.trace/v1","verdict":"drop","reaches":"nowhere","steps":[{"hook":"FORWARD","table":"filter","chain":"FORWARD","target":"DROP","text":"policy DROP"}]}`, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			var v any
			if err := json.Unmarshal([]byte(c.doc), &v); err != nil {
				t.Fatal(err)
			}
			if c.edit != nil {
				c.edit(v.(map[string]any))
			}
			if err := compiledSchemas(t)[c.schema].Validate(v); err == nil {
				t.Errorf("%s accepted it", c.schema)
			}
		})
	}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func nonEmpty(p string) bool { st, err := os.Stat(p); return err == nil && st.Size() > 0 }

// watchSchemaEvents are one event of each kind, as watch's machine makes
// them: a drift attributed to a process, the repair, health, an error.
func watchSchemaEvents() []watch.Event {
	t0 := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)
	m := watch.NewMachine(watch.Config{Fix: true}, t0)
	v := watch.Verdict{Keys: []string{"dnat-missing family=ipv4 table=nat chain=DOCKER"}, IDs: []string{"dnat-missing"}, Repairable: true}
	evs, _ := m.Checked(t0, watch.Verdict{}, nil)
	m.Change(t0.Add(time.Second), watch.Change{Source: "nftables", Generation: 9, By: watch.Process{PID: 4242, Comm: "iptables"}, What: []string{"ip nat DOCKER: 6 rules deleted"}})
	drift, _ := m.Checked(t0.Add(2*time.Second), v, nil)
	evs = append(evs, drift...)
	evs = append(evs, m.Repaired(t0.Add(3*time.Second), v, watch.RepairOutcome{Repaired: v.IDs})...)
	healthy, _ := m.Checked(t0.Add(4*time.Second), watch.Verdict{}, nil)
	evs = append(evs, healthy...)
	failed, _ := m.Checked(t0.Add(5*time.Second), watch.Verdict{}, errors.New("reading rules: iptables-save: exit status 4"))
	return append(evs, failed...)
}
