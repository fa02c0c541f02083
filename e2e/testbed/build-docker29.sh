#!/usr/bin/env bash
# build-docker29.sh — build real Docker 29 (dockerd, docker-proxy) and a runc that knows time
# namespaces from source, once per machine, into a cache folder the testbed uses for DOCKER=29.
#
#   build-docker29.sh [DIR]     default DIR: $TESTBED_ROOT/.cache/docker-29/$DOCKER29_VERSION
#
# Why from source: no Debian suite reachable here ships Docker 29, but the Go module proxy
# serves its daemon module github.com/moby/moby/v2; v2.0.0-beta.24 sits on the docker-v29.8.1
# tag commit (its releases/versions.yaml: last 29.8.0, next 29.8.1).
#
# What DIR holds afterwards (DIR/bin is what the testbed puts first in PATH):
#   bin/dockerd, bin/docker-proxy   built from the moby module (CGO off, static, ~100 MB)
#   bin/runc                        built from github.com/opencontainers/runc (CGO, static, with
#                                   libseccomp.a from Debian 12's libseccomp-dev); Debian 12's
#                                   runc 1.1.5 cannot start Docker 29's containers, which get a
#                                   time namespace ("namespace time does not exist")
#   bin/containerd, containerd-shim-runc-v2, ctr, docker   links to Debian sid's (fetch-sid):
#                                   containerd 2.1 and the docker 28.5 CLI
#   BUILD                           versions, build times, go version
#
# The docker CLI: none is built. Docker 29.8.1 serves API 1.56 and accepts clients down to its
# minimum API version 1.40 (defaultMinAPIVersion in the module's daemon/config/config.go; its
# `docker version` says "minimum version 1.40"), so both Debian 12's 20.10 client (API 1.41)
# and sid's 28.5 client (1.51) talk to it, checked here. The testbed puts sid's client first
# in PATH: the newer one knows more of 29's fields (e.g. `docker info` FirewallBackend).
#
# Idempotent and cached: when DIR/bin holds all binaries and DIR/BUILD names the same versions,
# nothing is done. A failed build leaves no half-filled DIR/bin and prints the failing step
# with the tail of its log. Nothing built here is ever committed.
#
# Env: TESTBED_ROOT (default /tmp/iptscope-testbed), DOCKER29_MODULE (default
# v2.0.0-beta.24), DOCKER29_VERSION (default 29.8.1, the version dockerd reports),
# RUNC_VERSION (default v1.5.1), SID_DIR (default $TESTBED_ROOT/.cache/docker-sid),
# GO (default go in PATH, else /usr/local/go/bin/go).

set -euo pipefail

TESTBED_ROOT=${TESTBED_ROOT:-/tmp/iptscope-testbed}
DOCKER29_MODULE=${DOCKER29_MODULE:-v2.0.0-beta.24}
DOCKER29_VERSION=${DOCKER29_VERSION:-29.8.1}
RUNC_VERSION=${RUNC_VERSION:-v1.5.1}
SID_DIR=${SID_DIR:-$TESTBED_ROOT/.cache/docker-sid}
SCRIPT_DIR=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")

die() { echo "build-docker29: error: $*" >&2; exit 1; }
log() { echo "build-docker29: $*" >&2; }

GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
[[ -x $GO ]] || die "no go toolchain (GO=$GO)"

DIR=${1:-$TESTBED_ROOT/.cache/docker-29/$DOCKER29_VERSION}
WANT="moby/v2@$DOCKER29_MODULE docker=$DOCKER29_VERSION runc@$RUNC_VERSION"

SID_BINS=(containerd containerd-shim-runc-v2 ctr docker)

# built: DIR/bin holds the binaries built here, of the versions wanted.
built() {
	local b
	for b in dockerd docker-proxy runc; do
		[[ -x $DIR/bin/$b && ! -L $DIR/bin/$b ]] || return 1
	done
	[[ -f $DIR/BUILD ]] && grep -qxF "want: $WANT" "$DIR/BUILD"
}

# complete: built, and the links to sid's binaries work.
complete() {
	local b
	built || return 1
	for b in "${SID_BINS[@]}"; do
		[[ -x $DIR/bin/$b ]] || return 1
	done
}

# link_sid DIR: DIR/<b> -> sid's containerd, shim, ctr and docker client (fetch-sid first).
link_sid() {
	local b
	"$SCRIPT_DIR/dockerhost.sh" fetch-sid "$SID_DIR" >&2 || return 1
	SID_DIR=$(readlink -f "$SID_DIR")
	for b in "${SID_BINS[@]}"; do
		[[ -x $SID_DIR/bin/$b ]] || { echo "$SID_DIR/bin/$b missing after fetch-sid" >&2; return 1; }
		ln -sfn "$SID_DIR/bin/$b" "$1/$b"
	done
}

if complete; then
	log "$DIR already holds $WANT ($("$DIR/bin/dockerd" --version))"
	exit 0
fi
if built; then
	# Only sid's part is gone (e.g. its cache folder was removed): fetch and link it again.
	link_sid "$DIR/bin" || die "fetch-sid failed (see above)"
	log "$DIR holds $WANT; relinked sid's containerd and docker client"
	exit 0
fi

# Only one build at a time per machine: a second caller waits for the first (CI and test
# hosts may ask together), then finds the cache filled.
mkdir -p "$(dirname "$DIR")"
exec 9>"$DIR.lock"
if ! flock -n 9; then
	log "another build of $DIR runs; waiting for it (up to 40 min)"
	flock -w 2400 9 || die "timed out waiting for the other build of $DIR (lock $DIR.lock)"
	if complete; then
		log "$DIR was filled by the other build"
		exit 0
	fi
fi

WORK=$DIR.work
rm -rf "$WORK"
mkdir -p "$WORK/logs"
T0=$SECONDS

# step NAME CMD...: runs CMD with its output in WORK/logs/NAME.log; on failure prints the
# tail of the log and dies naming the step.
step() {
	local name=$1 t=$SECONDS
	shift
	log "$name ..."
	# A subshell, so that the steps cd and export freely, started in the background and waited
	# for: run under "if" or "||", bash would ignore set -e inside it and carry on past the
	# first failure.
	local rc=0
	("$@") >"$WORK/logs/$name.log" 2>&1 &
	wait $! || rc=$?
	if ((rc != 0)); then
		tail -40 "$WORK/logs/$name.log" >&2
		die "step '$name' failed with exit $rc (full log $WORK/logs/$name.log)"
	fi
	log "$name done in $((SECONDS - t)) s"
	echo "$name $((SECONDS - t))s" >>"$WORK/times"
}

# module_dir MODULE@VERSION: downloads a module through the module proxy into the module cache
# and prints its folder. Run outside any go.mod, so that the download does not touch one.
module_dir() {
	(cd "$WORK" && GOFLAGS=-mod=mod GO111MODULE=on "$GO" mod download -json "$1") >"$WORK/logs/download-${1//\//_}.json" ||
		{ cat "$WORK/logs/download-${1//\//_}.json" >&2; return 1; }
	sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p' "$WORK/logs/download-${1//\//_}.json"
}

copy_module() { # MODULE@VERSION DEST
	local src
	src=$(module_dir "$1") || return 1
	[[ -n $src && -d $src ]] || { echo "no module folder for $1" >&2; return 1; }
	cp -r "$src" "$2"
	chmod -R u+w "$2"
}

# --- sid's containerd and docker CLI (the testbed's own fetch, cached there)
mkdir -p "$WORK/bin"
step fetch-sid link_sid "$WORK/bin"

# --- dockerd and docker-proxy
build_moby() {
	copy_module "github.com/moby/moby/v2@$DOCKER29_MODULE" "$WORK/moby"
	cd "$WORK/moby"
	# The module's own go.mod pins every dependency; -mod=mod because the module zip carries
	# no vendor folder the go.mod would agree with.
	GOFLAGS="-buildvcs=false -mod=mod" "$GO" mod download
	local tags="netgo osusergo static_build nri_no_wasm exclude_graphdriver_btrfs exclude_disk_quota"
	local ld="-X github.com/moby/moby/v2/dockerversion.Version=$DOCKER29_VERSION"
	ld="$ld -X github.com/moby/moby/v2/dockerversion.GitCommit=moby-v2-$DOCKER29_MODULE"
	CGO_ENABLED=0 GOFLAGS="-buildvcs=false -mod=mod" "$GO" build -trimpath -tags "$tags" -ldflags "$ld" \
		-o "$WORK/bin/dockerd" ./cmd/dockerd
	CGO_ENABLED=0 GOFLAGS="-buildvcs=false -mod=mod" "$GO" build -trimpath -tags "$tags" -ldflags "$ld" \
		-o "$WORK/bin/docker-proxy" ./cmd/docker-proxy
}
step build-dockerd build_moby

# --- runc with libseccomp linked in statically
fetch_seccomp() {
	mkdir -p "$WORK/seccomp/debs" "$WORK/seccomp/root"
	# apt-get download needs no root for the folder it writes to, only the lists apt-get
	# update filled; the package is unpacked, never installed.
	(cd "$WORK/seccomp/debs" && apt-get download -q libseccomp-dev)
	local deb
	for deb in "$WORK"/seccomp/debs/*.deb; do dpkg -x "$deb" "$WORK/seccomp/root"; done
	ls "$WORK"/seccomp/root/usr/lib/*/libseccomp.a
}
step fetch-libseccomp fetch_seccomp

build_runc() {
	copy_module "github.com/opencontainers/runc@$RUNC_VERSION" "$WORK/runc"
	cd "$WORK/runc"
	local root=$WORK/seccomp/root libdir
	libdir=$(dirname "$(ls "$root"/usr/lib/*/libseccomp.a)")
	# libseccomp-golang asks pkg-config for libseccomp: point it at the unpacked .pc and let
	# the sysroot prefix its /usr paths.
	export PKG_CONFIG_PATH=$libdir/pkgconfig PKG_CONFIG_SYSROOT_DIR=$root
	export CGO_ENABLED=1 CGO_CFLAGS="-I$root/usr/include" CGO_LDFLAGS="-L$libdir"
	# The runc Makefile's "static" target: these tags and a static external link.
	GOFLAGS="-buildvcs=false -mod=mod" "$GO" build -trimpath -tags "seccomp urfave_cli_no_docs netgo osusergo" \
		-ldflags "-X main.version=${RUNC_VERSION#v} -X main.gitCommit=module-$RUNC_VERSION -extldflags -static -w -s" \
		-o "$WORK/bin/runc" .
	"$WORK/bin/runc" --version
	local features
	features=$("$WORK/bin/runc" features)
	grep -q '"time"' <<<"$features" || { echo "runc features lists no time namespace" >&2; return 1; }
}
step build-runc build_runc

check_bins() {
	"$WORK/bin/dockerd" --version | grep -F "$DOCKER29_VERSION"
	"$WORK/bin/docker-proxy" --version || true
}
step check check_bins

# Publish: the new bin folder replaces the old one in one rename.
local_bin=$WORK/bin
mkdir -p "$DIR"
{
	echo "want: $WANT"
	echo "go: $("$GO" version)"
	echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) in $((SECONDS - T0)) s"
	cat "$WORK/times"
} >"$WORK/BUILD"
rm -rf "$DIR/bin.old"
if [[ -d $DIR/bin ]]; then mv "$DIR/bin" "$DIR/bin.old"; fi
mv "$local_bin" "$DIR/bin"
mv "$WORK/BUILD" "$DIR/BUILD"
rm -rf "$DIR/bin.old" "$WORK"
log "ready in $DIR after $((SECONDS - T0)) s: $("$DIR/bin/dockerd" --version); $("$DIR/bin/runc" --version | head -1)"
