// Package docs carries the pages the iptscope binary prints about itself:
// one page per check (checks/<id>.md, for `iptscope explain ID`). It holds
// no code beyond the embedded files.
package docs

import "embed"

// Checks holds checks/<id>.md for every check ID (and checks/README.md,
// the index). The pages are the ones in the repository, byte for byte.
//
//go:embed checks/*.md
var Checks embed.FS
