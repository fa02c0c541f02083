// Package docs carries the pages and schemas the iptscope binary knows
// about itself: one page per check (checks/<id>.md, for `iptscope explain
// ID`) and the JSON Schema of every JSON document iptscope writes
// (schema/<name>.v1.json). It holds no code beyond the embedded files.
package docs

import "embed"

// Checks holds checks/<id>.md for every check ID (and checks/README.md,
// the index). The pages are the ones in the repository, byte for byte.
//
//go:embed checks/*.md
var Checks embed.FS

// Schemas holds schema/<name>.v1.json, the JSON Schema (draft 2020-12) of
// each document: doctor, fix, snapshot, rules, graph, checks, version,
// trace and watch. Each schema's $id ends in its file name, so that the
// references between them ("doctor.v1.json#/$defs/finding") resolve.
//
//go:embed schema/*.json
var Schemas embed.FS
