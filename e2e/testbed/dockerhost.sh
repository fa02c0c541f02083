#!/usr/bin/env bash
# dockerhost.sh — run real, throw-away Docker hosts inside network namespaces.
#
# Used by fixtures/capture.sh to record fixtures and (later) by the Go e2e tests.
# Every subcommand takes a host NAME and is idempotent.
#
#   dockerhost.sh fetch-sid [DIR]       download Docker 28.5 + containerd 2.1 from Debian sid
#                                       into DIR (default $SID_DIR) without installing them
#   dockerhost.sh fetch-trixie [DIR]    the same for Docker 26.1 + containerd 1.7 from Debian 13
#                                       trixie (default DIR $TRIXIE_DIR)
#   dockerhost.sh build-29 [DIR]        build Docker 29 (dockerd, docker-proxy) and runc from source
#                                       into DIR (default $D29_DIR) once per machine; see
#                                       build-docker29.sh next to this script
#   dockerhost.sh up NAME               start containerd + dockerd for NAME
#        env DOCKER=20.10|26.1|28.5|29  (default 20.10: Debian 12's docker.io; 26.1: trixie's;
#                                     28.5: sid's; 29: 29.8.1 built by build-29)
#            BACKEND=nft|legacy (default nft; the iptables dockerd and the captures run)
#            FIREWALL=iptables|nftables (Docker 29 only, default iptables: daemon.json
#                               "firewall-backend"; nftables also sets net.ipv4.ip_forward=1 in
#                               the host's netns first, as 29 refuses to start without it)
#            PROXY=on|off       (default on: userland-proxy true)
#            LIVE_RESTORE=0|1   (default 0; 1 adds "live-restore": true to daemon.json)
#            DAEMON_EXTRA=JSON  more daemon.json members, e.g. '"iptables": false'
#   dockerhost.sh restart NAME          stop dockerd (recorded PID, SIGTERM) and start it again the
#                                       same way; wait until it answers (with LIVE_RESTORE=1 the
#                                       containers keep running)
#   dockerhost.sh layout NAME           create the standard containers and networks
#   dockerhost.sh probe NAME            HTTP GET every published port, print one line per port
#   dockerhost.sh capture NAME OUTDIR   probe, then dump iptables and Docker state into OUTDIR
#   dockerhost.sh down NAME             stop and remove everything "up" made (also after a failed up)
#   dockerhost.sh docker NAME ARGS...   docker CLI against NAME's daemon
#   dockerhost.sh ipt NAME CMD ARGS...  run an iptables-family command (or any command) inside
#                                       NAME's netns with its backend and xtables lock
#   dockerhost.sh env NAME              print the host's recorded settings (shell syntax)
#   dockerhost.sh snapshot NAME         record the current rules (both backends, both families)
#                                       and sysctls as the state "heal" returns to ("layout" and
#                                       "admin-rules" take one; "break" takes one if none exists)
#   dockerhost.sh break NAME KIND       put the host in a broken state users meet (see KINDS)
#   dockerhost.sh heal NAME             restore the snapshot, undo "break", verify rules + probe
#   dockerhost.sh admin-rules NAME      add an admin's DOCKER-USER rule and chain ADMIN-CHAIN
#                                       (jumped to from INPUT), then re-take the snapshot
#
# KINDS (each applied inside NAME's netns with its backend and xtables lock):
#   nat-docker-flushed       iptables -t nat -F DOCKER
#   nat-docker-deleted       delete every nat jump to DOCKER, flush and delete nat DOCKER
#   prerouting-jump-deleted  iptables -t nat -D PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
#   ip-forward-off           sysctl net.ipv4.ip_forward=0
#   stale-dnat               Docker's 8080 DNAT rule, pointing at 172.17.0.250:80, inserted at
#                            the top of nat DOCKER (shadows the real one)
#   firewall-reload          per family and existing table: -F, -X, policies ACCEPT
#   backend-split            rules untouched; capture/collect then see an iptables on PATH that
#                            uses the other backend (HOST_BACKEND in "env" vs DAEMON_BACKEND)
#   legacy-leftovers         Docker's nat+filter rules also restored into the other backend
#   user-jump-deleted        iptables -D FORWARD -j DOCKER-USER
#   forward-jump-deleted     28+: -D FORWARD -j DOCKER-FORWARD; 20.10-27: -D FORWARD -j
#                            DOCKER-ISOLATION-STAGE-1 and -D FORWARD -o docker0 -j DOCKER
#   filter-docker-flushed    iptables -F DOCKER
#   masquerade-deleted       docker0's "POSTROUTING -s SUBNET ! -o docker0 -j MASQUERADE" deleted
#   port-accept-deleted      web's filter DOCKER ACCEPT (its 8080 -> 80) deleted
#   raw-endpoint-deleted     28.2+: web's raw "PREROUTING -d IP/32 ! -i docker0 -j DROP" deleted
#   docker-user-deleted      FORWARD -> DOCKER-USER deleted, DOCKER-USER flushed and deleted
#   forward-drop-inserted    iptables -I FORWARD 1 -j DROP (a host firewall)
#   forward-reject-bridge    iptables -I FORWARD 1 -i docker0 -j REJECT (a host firewall)
#   docker-user-port-drop    the admin closes 8080: -I DOCKER-USER -p tcp -m conntrack
#                            --ctorigdstport 8080 -j DROP (deliberate; never repaired)
#   reload-policy-drop       IPv4 firewall-reload, then iptables -P FORWARD DROP
#   raw-flushed              iptables -t raw -F
#   proxy-killed             SIGKILL the docker-proxy processes of port 8080 (proxy on); heal
#                            restarts container web and re-takes the snapshot
#   isolation-flushed        iptables -F DOCKER-ISOLATION-STAGE-2 (before 29)
#   internal-flushed         29: iptables -F DOCKER-INTERNAL (the internal network's DROPs)
#   bridge-down              ip link set docker0 down (heal: up)
#   veth-detached            web's host-side veth taken off docker0 (heal: put back)
#   br-netfilter-off         sysctl net.bridge.bridge-nf-call-iptables=0 (heal: back)
#   route-localnet-off       sysctl net.ipv4.conf.docker0.route_localnet=0 (heal: back)
#   hairpin-off              web's veth: bridge_slave hairpin off (heal: back)
#   saved-rules-restored     iptables-save | iptables-restore --noflush (netfilter-persistent's
#                            "-n" at boot on top of Docker's rules): user chains are flushed and
#                            refilled, built-in chains get a second copy of every rule
#   dnat-repointed           Docker's 8080 DNAT replaced, at the top of nat DOCKER, by one to web's
#                            address on port 81 (a re-created container's leftover)
#   nat-return-deleted       iptables -t nat -D DOCKER -i docker0 -j RETURN (proxy on)
#
# KINDS for FIREWALL=nftables (Docker 29's own tables, docker-facts.md §2.5; ip-forward-off applies
# too; the iptables kinds above refuse such a host, these refuse an iptables one):
#   nft-table-deleted          nft delete table ip docker-bridges
#   nft-bridge-chain-flushed   nft flush chain ip docker-bridges filter-forward-in__docker0
#   nft-vmap-element-deleted   docker0's element of map filter-forward-in-jumps deleted
#   nft-dnat-deleted           web's "DNAT" rule for 8080 deleted from nat-prerouting-and-output
#   nft-masq-flushed           nft flush chain ip docker-bridges nat-postrouting-out__docker0
#   nft-user-table-drop        a user's table inet myfw, forward hook at priority filter - 1,
#                              dropping "ct original proto-dst 8080" (deliberate; heal deletes it)
#   nft-iptables-forward-drop  iptables-nft -P FORWARD DROP (left from an iptables-mode Docker)
# Other env: TESTBED_ROOT (default /tmp/iptscope-testbed), SID_DIR (default
# $TESTBED_ROOT/.cache/docker-sid), TRIXIE_DIR (default $TESTBED_ROOT/.cache/docker-trixie),
# D29_DIR (default $TESTBED_ROOT/.cache/docker-29/29.8.1), NETX (third octet of 198.18.X.0/30,
# default derived from NAME), WAIT_SECS (deadline of every wait for a daemon, a socket or the
# ports, default 180: generous, as a busy machine makes each step slower; each wait logs what it
# waited for and how long), PROBE_SECS (connect timeout of one probe, default 3; a whole GET
# gets twice that), KEEP_STATE=1 (down keeps the state dir).
# capture: PROBES (probe rounds before the dumps, default 2), IPTSCOPE_BIN (an iptscope binary
# for bundle.json; default: built once from this repo into the state dir; IPTSCOPE_BIN=none skips).
#
# What a host is:
#
#     netns NAME-c (client)                      netns NAME (docker host)
#     tbcli0 198.18.X.2/30  <---- veth ---->   tbhost0 198.18.X.1/30
#     default via 198.18.X.1                     containerd + dockerd (nsenter --net)
#                                                docker0, br-..., containers
#
# Rules of the house: nothing here touches the root network namespace (no links, no
# iptables there), traffic is only sent inside the two namespaces, and down stops only
# processes this script started, by recorded PID (checked against the process start time).

set -euo pipefail

TESTBED_ROOT=${TESTBED_ROOT:-/tmp/iptscope-testbed}
SID_DIR=${SID_DIR:-$TESTBED_ROOT/.cache/docker-sid}
TRIXIE_DIR=${TRIXIE_DIR:-$TESTBED_ROOT/.cache/docker-trixie}
D29_DIR=${D29_DIR:-$TESTBED_ROOT/.cache/docker-29/29.8.1}
WAIT_SECS=${WAIT_SECS:-180}
PROBE_SECS=${PROBE_SECS:-3}
SCRIPT_PATH=$(readlink -f "${BASH_SOURCE[0]}")
SYS_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

die() { echo "dockerhost: error: $*" >&2; exit 1; }
log() { echo "dockerhost: $*" >&2; }

need_root() { [[ $(id -u) == 0 ]] || die "must run as root"; }

check_name() {
	local name=${1:-}
	[[ -n $name ]] || die "missing host NAME"
	# Short names keep interface, netns, cgroup and unix socket paths within kernel limits.
	[[ $name =~ ^[a-z][a-z0-9]{0,11}$ ]] || die "bad host NAME '$name': want [a-z][a-z0-9]{0,11}"
}

# set_host NAME: defines the per-host paths.
set_host() {
	check_name "$1"
	NAME=$1
	CNAME=$1-c
	STATE=$TESTBED_ROOT/$NAME
	NETNS=/var/run/netns/$NAME
	CGPARENT=/iptscope-$NAME
	CTRD_DIR=$STATE/containerd
	CTRD_SOCK=$CTRD_DIR/containerd.sock
	DOCKER_SOCK=$STATE/docker.sock
	BIN=$STATE/bin
	LOGS=$STATE/logs
	LOCKFILE=$STATE/xtables.lock
	# Why not under $STATE: 20.10's libnetwork puts a unix socket named after a 64-hex
	# controller id under EXEC_ROOT/libnetwork/, and sun_path holds only 108 bytes.
	EXEC_ROOT=/run/iptscope/$NAME
	SNAP=$STATE/healthy
	BREAK_FILE=$STATE/break
}

# load_env: reads the settings "up" recorded (DOCKER, BACKEND, PROXY, FIREWALL, NETX, SID_DIR,
# TRIXIE_DIR, D29_DIR).
load_env() {
	if [[ -f $STATE/env ]]; then
		# shellcheck disable=SC1091
		source "$STATE/env"
	fi
	FIREWALL=${FIREWALL:-iptables}
	# What "break" recorded: BREAK (kinds applied since the last heal), DAEMON_BACKEND (what
	# dockerd writes to) and HOST_BACKEND (what the iptables on the captures' PATH uses).
	BREAK="" DAEMON_BACKEND=${BACKEND:-} HOST_BACKEND=${BACKEND:-}
	if [[ -f $BREAK_FILE ]]; then
		# shellcheck disable=SC1090
		source "$BREAK_FILE"
	fi
	HOSTBIN=$BIN
	if [[ -n ${BACKEND:-} && $HOST_BACKEND != "$BACKEND" ]]; then HOSTBIN=$STATE/bin-$HOST_BACKEND; fi
}

require_up() {
	[[ -f $STATE/env ]] || die "host $NAME is not up (no $STATE/env); run: $0 up $NAME"
	load_env
	[[ -e $NETNS ]] || die "host $NAME: network namespace $NAME is missing"
}

host_ip() { echo "198.18.$NETX.1"; }
client_ip() { echo "198.18.$NETX.2"; }

# in_host CMD...: runs CMD inside the host's netns with the host's iptables backend and lock.
# nsenter, not "ip netns exec": the latter remounts /sys, which breaks dockerd.
in_host() {
	env PATH="$BIN:$SYS_PATH" XTABLES_LOCKFILE="$LOCKFILE" nsenter --net="$NETNS" "$@"
}

# in_view CMD...: like in_host, but with the iptables the host's admin sees on PATH (differs
# from the daemon's only after "break NAME backend-split").
in_view() {
	env PATH="$HOSTBIN:$SYS_PATH" XTABLES_LOCKFILE="$LOCKFILE" nsenter --net="$NETNS" "$@"
}

# in_client CMD...: runs CMD inside the client netns.
in_client() {
	nsenter --net="/var/run/netns/$CNAME" "$@"
}

dk() {
	env PATH="$BIN:$SYS_PATH" docker -H "unix://$DOCKER_SOCK" "$@"
}

# ---------------------------------------------------------------- fetch-sid, fetch-trixie

# cmd_fetch SUITE DIR: downloads docker.io, containerd and docker-cli from the Debian SUITE
# (sid: Docker 28.5 + containerd 2.1; trixie: Docker 26.1 + containerd 1.7) with a private
# apt sources list and lists folder, unpacks them into DIR/root and links the binaries into
# DIR/bin. Nothing is installed. Idempotent: a DIR that already holds them is left alone.
cmd_fetch() {
	need_root
	local suite=$1 dir=$2
	mkdir -p "$dir"
	dir=$(readlink -f "$dir")
	if [[ -x $dir/bin/dockerd && -x $dir/bin/containerd && -x $dir/bin/runc && -x $dir/bin/docker-proxy ]]; then
		log "fetch-$suite: $dir already holds Docker from $suite ($("$dir/bin/dockerd" --version))"
		return 0
	fi
	local apt=$dir/apt
	mkdir -p "$apt/lists/partial" "$apt/debs" "$dir/root" "$dir/bin"
	echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $suite main" >"$apt/sources.list"
	local opts=(-q -o "Dir::Etc::sourcelist=$apt/sources.list" -o "Dir::Etc::sourceparts=-"
		-o "Dir::State::Lists=$apt/lists" -o "APT::Sandbox::User=root"
		-o "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false"
		-o "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false"
		-o "Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false")
	log "fetch-$suite: apt-get update ($suite, private lists in $apt/lists)"
	apt-get "${opts[@]}" update >"$apt/update.log" 2>&1 || { cat "$apt/update.log" >&2; die "fetch-$suite: apt-get update for $suite failed"; }
	# docker-cli too: sid and trixie ship the client separately; a client of the daemon's
	# version makes "docker version" match.
	(cd "$apt/debs" && apt-get "${opts[@]}" download docker.io containerd docker-cli) >"$apt/download.log" 2>&1 ||
		{ cat "$apt/download.log" >&2; die "fetch-$suite: apt-get download failed"; }
	local deb
	for deb in "$apt"/debs/*.deb; do
		dpkg -x "$deb" "$dir/root"
	done
	local b
	for b in usr/sbin/dockerd usr/sbin/docker-proxy usr/bin/containerd usr/bin/containerd-shim-runc-v2 usr/bin/ctr usr/bin/docker; do
		[[ -x $dir/root/$b ]] || die "fetch-$suite: $b missing from the $suite packages"
		ln -sfn "$dir/root/$b" "$dir/bin/$(basename "$b")"
	done
	# sid's and trixie's runc need glibc 2.38 (Debian 12 has 2.36); Debian 12's runc works
	# with their containerd and dockerd.
	[[ -x /usr/sbin/runc ]] || die "fetch-$suite: /usr/sbin/runc missing (apt-get install runc)"
	cp -f /usr/sbin/runc "$dir/bin/runc"
	ls "$apt"/debs/*.deb | xargs -n1 basename >"$dir/PACKAGES"
	log "fetch-$suite: ready in $dir: $("$dir/bin/dockerd" --version)"
}

cmd_fetch_sid() { cmd_fetch sid "${1:-$SID_DIR}"; }
cmd_fetch_trixie() { cmd_fetch trixie "${1:-$TRIXIE_DIR}"; }

# cmd_build_29 [DIR]: Docker 29.8.1 and runc built from source, cached in DIR (build-docker29.sh:
# a no-op when DIR already holds them; concurrent callers wait for one build).
cmd_build_29() {
	need_root
	SID_DIR=$SID_DIR TESTBED_ROOT=$TESTBED_ROOT "$(dirname "$SCRIPT_PATH")/build-docker29.sh" "${1:-$D29_DIR}"
}

# ---------------------------------------------------------------- up

# pick_netx: third octet for the /30, derived from NAME, avoiding those of other hosts.
pick_netx() {
	if [[ -n ${NETX:-} ]]; then
		[[ $NETX =~ ^[0-9]+$ && $NETX -ge 0 && $NETX -le 255 ]] || die "bad NETX '$NETX'"
		return
	fi
	local x used
	x=$(($(printf '%s' "$NAME" | cksum | cut -d' ' -f1) % 250 + 1))
	used=$(cat "$TESTBED_ROOT"/*/netx 2>/dev/null | sort -u || true)
	while grep -qx "$x" <<<"$used"; do x=$((x % 250 + 1)); done
	NETX=$x
}

# pid_start PID: the process start time (field 22 of /proc/PID/stat), empty if gone.
pid_start() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
	stat=${stat##*) }
	awk '{print $20}' <<<"$stat"
}

record_pid() { # role pid
	echo "$1 $2 $(pid_start "$2")" >>"$STATE/pids"
}

setup_netns() {
	local ns
	for ns in "$NAME" "$CNAME"; do
		[[ -e /var/run/netns/$ns ]] || ip netns add "$ns"
		ip -n "$ns" link set lo up
	done
	if ! ip -n "$NAME" link show tbhost0 >/dev/null 2>&1; then
		# Created inside NAME, peer placed straight into NAME-c: nothing appears in the root netns.
		ip -n "$NAME" link add tbhost0 type veth peer name tbcli0 netns "$CNAME"
	fi
	ip -n "$NAME" addr replace "$(host_ip)/30" dev tbhost0
	ip -n "$CNAME" addr replace "$(client_ip)/30" dev tbcli0
	ip -n "$NAME" link set tbhost0 up
	ip -n "$CNAME" link set tbcli0 up
	ip -n "$CNAME" route replace default via "$(host_ip)"
}

# link_iptables DIR VARIANT: DIR/iptables* and DIR/ip6tables* -> /usr/sbin/*-VARIANT*.
link_iptables() {
	local dir=$1 variant=$2 fam suf t
	mkdir -p "$dir"
	for fam in iptables ip6tables; do
		for suf in "" -save -restore; do
			t=/usr/sbin/$fam-$variant$suf
			[[ -x $t ]] || die "$t missing (apt-get install iptables)"
			ln -sfn "$t" "$dir/$fam$suf"
		done
	done
}

# dist_dir: the folder fetch-sid/fetch-trixie/build-29 filled for $DOCKER; empty for 20.10
# (the system's docker.io).
dist_dir() {
	case $DOCKER in
	28.5) echo "$SID_DIR" ;;
	26.1) echo "$TRIXIE_DIR" ;;
	29) echo "$D29_DIR" ;;
	esac
}

setup_bin() {
	mkdir -p "$BIN"
	local t dist
	# Docker runs the first iptables in PATH; so do our captures.
	link_iptables "$BIN" "$BACKEND"
	dist=$(dist_dir)
	if [[ -n $dist ]]; then
		for t in dockerd docker-proxy containerd containerd-shim-runc-v2 ctr docker runc; do
			ln -sfn "$dist/bin/$t" "$BIN/$t"
		done
	fi
}

write_configs() {
	mkdir -p "$CTRD_DIR/root" "$CTRD_DIR/state" "$CTRD_DIR/opt" "$STATE/docker" "$EXEC_ROOT" "$LOGS"
	# CRI and NRI off so that containerd leaves /etc/cni and /var/run/nri alone.
	cat >"$CTRD_DIR/config.toml" <<-EOF
		version = 2
		root = "$CTRD_DIR/root"
		state = "$CTRD_DIR/state"
		disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.runtime", "io.containerd.cri.v1.images", "io.containerd.nri.v1.nri"]
		[grpc]
		  address = "$CTRD_SOCK"
		[ttrpc]
		  address = "$CTRD_SOCK.ttrpc"
		[debug]
		  address = ""
		[metrics]
		  address = ""
		[plugins."io.containerd.internal.v1.opt"]
		  path = "$CTRD_DIR/opt"
	EOF
	local proxy=true proxy_path=/usr/sbin/docker-proxy extra=""
	if [[ $PROXY == off ]]; then proxy=false; fi
	# Why: without live-restore a restarted dockerd stops every container (docker-facts Part 1).
	if [[ ${LIVE_RESTORE:-0} == 1 ]]; then extra=",
  \"live-restore\": true"; fi
	if [[ -n $(dist_dir) ]]; then proxy_path=$(dist_dir)/bin/docker-proxy; fi
	# DAEMON_EXTRA: more daemon.json members, e.g. '"iptables": false'.
	if [[ -n ${DAEMON_EXTRA:-} ]]; then extra="$extra,
  $DAEMON_EXTRA"; fi
	# 20.10 writes /etc/docker/key.json unless told otherwise; 26.1 and 28.5 reject the key.
	if [[ $DOCKER == 20.10 ]]; then extra="$extra,
  \"deprecated-key-path\": \"$STATE/key.json\""; fi
	# 29: the firewall backend (iptables is its default too; written out so that the capture's
	# daemon.json says which).
	if [[ $DOCKER == 29 ]]; then extra="$extra,
  \"firewall-backend\": \"$FIREWALL\""; fi
	cat >"$STATE/daemon.json" <<-EOF
		{
		  "userland-proxy": $proxy,
		  "userland-proxy-path": "$proxy_path"$extra
		}
	EOF
}

# start_daemon ROLE LOGFILE CMD...: starts CMD in the host netns, records its PID.
start_daemon() {
	local role=$1 logf=$2
	shift 2
	# env and nsenter both exec, so $! is the daemon itself. Output goes to a file and
	# stdin to /dev/null so that a caller reading our stdout is not held open.
	env PATH="$BIN:$SYS_PATH" XTABLES_LOCKFILE="$LOCKFILE" \
		nsenter --net="$NETNS" "$@" </dev/null >>"$logf" 2>&1 &
	local pid=$!
	record_pid "$role" "$pid"
	log "up $NAME: started $role pid $pid (log $logf)"
}

alive_role() { # role -> 0 if the recorded process of that role runs
	local role pid start
	[[ -f $STATE/pids ]] || return 1
	while read -r role pid start; do
		[[ $role == "$1" ]] || continue
		if [[ -n $start && $(pid_start "$pid") == "$start" ]]; then return 0; fi
	done <"$STATE/pids"
	return 1
}

# now_ms: wall-clock milliseconds. Waits measure time, not rounds: on a busy machine each
# round of a check takes longer, and a count of rounds says nothing about how long was waited.
now_ms() { local t=${EPOCHREALTIME//[.,]/}; echo $((t / 1000)); }

# since T0_MS: seconds since T0_MS, e.g. "1.25".
since() { local d=$(($(now_ms) - $1)); printf '%d.%02d' $((d / 1000)) $((d % 1000 / 10)); }

# wait_for WHAT SECS CMD...: runs CMD until it succeeds, 0.2 s apart, for at most SECS seconds;
# logs how long WHAT took, or returns 1 after saying what was not seen.
wait_for() {
	local what=$1 secs=$2 t0
	shift 2
	t0=$(now_ms)
	while :; do
		if "$@" >/dev/null 2>&1; then
			log "${NAME:+$NAME: }$what after $(since "$t0") s"
			return 0
		fi
		if (($(now_ms) - t0 >= secs * 1000)); then
			log "${NAME:+$NAME: }$what: not seen within ${secs} s"
			return 1
		fi
		sleep 0.2
	done
}

import_image() {
	if dk image inspect bb:local >/dev/null 2>&1; then return 0; fi
	local img=$STATE/image
	rm -rf "$img"
	mkdir -p "$img/bin" "$img/www"
	cp /bin/busybox "$img/bin/busybox"
	ln -s busybox "$img/bin/sh"
	ln -s busybox "$img/bin/httpd"
	echo "iptscope testbed $NAME" >"$img/www/index.html"
	tar -C "$img" -cf "$STATE/bb.tar" .
	dk import "$STATE/bb.tar" bb:local >/dev/null
	log "up $NAME: imported bb:local"
}

cmd_up() {
	need_root
	set_host "$1"
	local want_docker=${DOCKER:-20.10} want_backend=${BACKEND:-nft} want_proxy=${PROXY:-on} want_lr=${LIVE_RESTORE:-0}
	local want_fw=${FIREWALL:-iptables}
	[[ $want_docker == 20.10 || $want_docker == 26.1 || $want_docker == 28.5 || $want_docker == 29 ]] || die "DOCKER must be 20.10, 26.1, 28.5 or 29, not '$want_docker'"
	[[ $want_backend == nft || $want_backend == legacy ]] || die "BACKEND must be nft or legacy, not '$want_backend'"
	[[ $want_proxy == on || $want_proxy == off ]] || die "PROXY must be on or off, not '$want_proxy'"
	[[ $want_fw == iptables || $want_fw == nftables ]] || die "FIREWALL must be iptables or nftables, not '$want_fw'"
	[[ $want_fw == iptables || $want_docker == 29 ]] || die "FIREWALL=nftables needs DOCKER=29 (Docker $want_docker has no nftables backend)"
	if [[ -f $STATE/env ]]; then
		local want_netx=${NETX:-}
		load_env
		if [[ $DOCKER != "$want_docker" || $BACKEND != "$want_backend" || $PROXY != "$want_proxy" || ${LIVE_RESTORE:-0} != "$want_lr" || $FIREWALL != "$want_fw" ]]; then
			die "host $NAME exists with DOCKER=$DOCKER BACKEND=$BACKEND PROXY=$PROXY FIREWALL=$FIREWALL LIVE_RESTORE=${LIVE_RESTORE:-0}; run: $0 down $NAME"
		fi
		if [[ -n $want_netx && $want_netx != "$NETX" ]]; then die "host $NAME exists with NETX=$NETX; run: $0 down $NAME"; fi
	else
		DOCKER=$want_docker BACKEND=$want_backend PROXY=$want_proxy LIVE_RESTORE=$want_lr FIREWALL=$want_fw
		mkdir -p "$STATE"
		pick_netx
		echo "$NETX" >"$STATE/netx"
		if [[ $DOCKER == 28.5 ]]; then
			cmd_fetch_sid "$SID_DIR"
			SID_DIR=$(readlink -f "$SID_DIR")
		elif [[ $DOCKER == 26.1 ]]; then
			cmd_fetch_trixie "$TRIXIE_DIR"
			TRIXIE_DIR=$(readlink -f "$TRIXIE_DIR")
		elif [[ $DOCKER == 29 ]]; then
			# Minutes on a fresh machine, nothing once cached (.ci/run builds it before the tests).
			cmd_build_29 "$D29_DIR" || die "up $NAME: Docker 29 could not be built (see above)"
			D29_DIR=$(readlink -f "$D29_DIR")
		fi
		cat >"$STATE/env" <<-EOF
			DOCKER=$DOCKER
			BACKEND=$BACKEND
			PROXY=$PROXY
			FIREWALL=$FIREWALL
			LIVE_RESTORE=$LIVE_RESTORE
			NETX=$NETX
			SID_DIR=$SID_DIR
			TRIXIE_DIR=$TRIXIE_DIR
			D29_DIR=$D29_DIR
			EXEC_ROOT=$EXEC_ROOT
		EOF
	fi
	setup_netns
	if [[ $FIREWALL == nftables ]]; then
		# Why: Docker 29's nftables backend never writes ip_forward and refuses to create
		# docker0 while it is 0 ("IPv4 forwarding is disabled", moby/moby#50566); an admin sets
		# it first. A new netns starts with 0.
		in_host sysctl -qw net.ipv4.ip_forward=1
	fi
	setup_bin
	write_configs
	touch "$LOCKFILE"

	if ! alive_role containerd; then
		start_daemon containerd "$LOGS/containerd.log" \
			containerd --config "$CTRD_DIR/config.toml" --root "$CTRD_DIR/root" \
			--state "$CTRD_DIR/state" --address "$CTRD_SOCK"
	fi
	wait_for "up: containerd socket" "$WAIT_SECS" test -S "$CTRD_SOCK" ||
		{ tail -20 "$LOGS/containerd.log" >&2; die "up $NAME: containerd socket $CTRD_SOCK did not appear"; }

	if ! alive_role dockerd; then start_dockerd; fi
	wait_dockerd up
	import_image
	log "up $NAME: ready (Docker $(dk version --format '{{.Server.Version}}'), $BACKEND, firewall $FIREWALL, proxy $PROXY, host $(host_ip), client $(client_ip))"
}

# start_dockerd: starts dockerd for the host (the one command line "up" and "restart" share).
start_dockerd() {
	# A dockerd killed hard leaves its pidfile, which blocks the next start.
	rm -f "$STATE/docker.pid"
	start_daemon dockerd "$LOGS/dockerd.log" \
		dockerd --data-root "$STATE/docker" --exec-root "$EXEC_ROOT" \
		--pidfile "$STATE/docker.pid" -H "unix://$DOCKER_SOCK" \
		--containerd "$CTRD_SOCK" --config-file "$STATE/daemon.json" \
		--cgroup-parent "$CGPARENT"
}

# wait_dockerd WHAT: waits (WAIT_SECS at most) until the daemon answers on its socket, or dies
# at once when the daemon has exited.
wait_dockerd() {
	local t0 why="did not answer within ${WAIT_SECS}s"
	t0=$(now_ms)
	while :; do
		if dk version >/dev/null 2>&1; then
			log "$1 $NAME: dockerd answers on its socket after $(since "$t0") s"
			return 0
		fi
		if ! alive_role dockerd; then why="exited"; break; fi
		if (($(now_ms) - t0 >= WAIT_SECS * 1000)); then break; fi
		sleep 0.1
	done
	tail -30 "$LOGS/dockerd.log" >&2
	die "$1 $NAME: dockerd $why on $DOCKER_SOCK (log $LOGS/dockerd.log)"
}

# ---------------------------------------------------------------- restart

# cmd_restart NAME: SIGTERM to the recorded dockerd (only if the PID is still the process
# started), wait for it to exit, start it again with the same command line, wait until it
# answers. containerd keeps running; with LIVE_RESTORE=1 so do the containers.
cmd_restart() {
	need_root
	set_host "$1"
	require_up
	local role pid start
	while read -r role pid start; do
		if [[ $role == dockerd ]]; then stop_pid "$pid" "$start" 60; fi
	done <"$STATE/pids"
	# Forget the dead dockerd, keep every other role.
	grep -v '^dockerd ' "$STATE/pids" >"$STATE/pids.new" || true
	mv "$STATE/pids.new" "$STATE/pids"
	start_dockerd
	wait_dockerd restart
	log "restart $NAME: dockerd answers again (live-restore ${LIVE_RESTORE:-0})"
}

# ---------------------------------------------------------------- layout

ensure_network() { # name opts...
	local n=$1
	shift
	dk network inspect "$n" >/dev/null 2>&1 || dk network create "$@" "$n" >/dev/null
}

ensure_container() { # name run-args...
	local n=$1
	shift
	if dk container inspect "$n" >/dev/null 2>&1; then
		[[ $(dk container inspect -f '{{.State.Running}}' "$n") == true ]] || dk start "$n" >/dev/null
	else
		dk run -d --name "$n" "$@" >/dev/null
	fi
}

HTTPD='/bin/busybox httpd -f -p 80 -h /www'

cmd_layout() {
	need_root
	set_host "$1"
	require_up
	ensure_network appnet
	ensure_network backnet --internal
	ensure_container web -p 8080:80 bb:local $HTTPD
	ensure_container multi -p 127.0.0.1:9090:80 -p 7000-7002:7000-7002 bb:local /bin/sh -c \
		'for p in 7000 7001 7002; do /bin/busybox httpd -p $p -h /www; done; exec /bin/busybox httpd -f -p 80 -h /www'
	ensure_container app --network appnet -p 8081:80 bb:local $HTTPD
	ensure_container back --network backnet bb:local $HTTPD
	if wait_for "layout: all published ports answer as on a healthy host" "$WAIT_SECS" probe_all; then
		[[ -n $BREAK ]] || take_snapshot
		return 0
	fi
	probe_all >&2 || true
	die "layout $NAME: published ports did not all answer within ${WAIT_SECS}s"
}

# ---------------------------------------------------------------- probe

# http_get WHERE URL [SECS]: exit 0 if an HTTP GET connects within SECS (default PROBE_SECS) and
# answers within twice that. WHERE is host|client. A dead port costs the connect timeout; a live
# one answers in milliseconds even on a busy machine, the margin is for forks that wait for a CPU.
http_get() {
	local where=$1 url=$2 secs=${3:-$PROBE_SECS} runner=in_client
	if [[ $where == host ]]; then runner=in_host; fi
	if command -v curl >/dev/null; then
		$runner timeout $((secs * 2 + 5)) curl -fsS -o /dev/null --connect-timeout "$secs" --max-time $((secs * 2)) "$url"
	else
		$runner timeout $((secs * 2 + 5)) busybox wget -q -O /dev/null -T $((secs * 2)) "$url"
	fi
}

# probe_all: prints "port=P answered=yes|no from=client|host url=U expect=yes|no" per port,
# returns 1 if a port that should answer did not. "expect" is what a healthy host does.
# The checks run concurrently (a broken port costs a PROBE_SECS connect timeout each). A port
# that must not answer (9090 from the client, dropped) is given 2 s: that wait is paid on every
# probe, and an answer that comes later still is no proof of a healthy host either way.
probe_all() {
	local rc=0 i tmp
	local -a checks=(
		"8080 client http://$(host_ip):8080/ yes"
		"7000 client http://$(host_ip):7000/ yes"
		"7001 client http://$(host_ip):7001/ yes"
		"7002 client http://$(host_ip):7002/ yes"
		"8081 client http://$(host_ip):8081/ yes"
		"9090 host http://127.0.0.1:9090/ yes"
		# Published on 127.0.0.1 only: must not answer from outside.
		"9090 client http://$(host_ip):9090/ no"
	)
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/dockerhost-probe.XXXXXX")
	local -a pids=()
	for i in "${!checks[@]}"; do
		(
			read -r port from url expect <<<"${checks[$i]}"
			secs=$PROBE_SECS
			[[ $expect == no ]] && secs=2
			if http_get "$from" "$url" "$secs" 2>/dev/null; then ans=yes; else ans=no; fi
			echo "port=$port answered=$ans from=$from url=$url expect=$expect" >"$tmp/$i"
		) &
		pids+=($!)
	done
	for i in "${pids[@]}"; do wait "$i" || true; done
	local line
	for i in "${!checks[@]}"; do
		line=$(cat "$tmp/$i" 2>/dev/null || echo "${checks[$i]} probe-failed")
		echo "$line"
		[[ $line =~ answered=([a-z]+).*expect=([a-z]+) && ${BASH_REMATCH[1]} == "${BASH_REMATCH[2]}" ]] || rc=1
	done
	rm -rf "$tmp"
	return $rc
}

cmd_probe() {
	need_root
	set_host "$1"
	require_up
	probe_all
}

# ---------------------------------------------------------------- capture

# counters_now: the host's rules with their packet counters: both families of both iptables
# backends (the capture keeps them all; the host's own IPv6 neighbour discovery and MLD
# packets count in ip6tables OUTPUT) and native nftables.
counters_now() {
	local b
	for b in nft legacy; do
		in_host "iptables-$b-save" -c 2>/dev/null | grep -v '^#' || true
		in_host "ip6tables-$b-save" -c 2>/dev/null | grep -v '^#' || true
	done
	in_host nft list ruleset 2>/dev/null || true
}

cmd_capture() {
	need_root
	set_host "$1"
	local out=${2:-}
	[[ -n $out ]] || die "capture: missing OUTDIR"
	require_up
	mkdir -p "$out"
	out=$(readlink -f "$out")
	# Traffic first, so that the counters in the dumps are not all zero.
	probe_all >"$out/probe.txt" || log "capture $NAME: note: some ports did not answer as a healthy host does (see $out/probe.txt)"
	local i b
	for ((i = 1; i < ${PROBES:-2}; i++)); do probe_all >/dev/null || true; done
	# Why: a probe that timed out leaves connections closing for about a second (with the proxy
	# off, dockerd's port-reserving listener accepts but never answers; seen on 26.1 after
	# firewall-reload); their last packets would bump the counters between the dumps below
	# and bundle.json. Wait (up to 5 s: a settling wait, not a condition that must come) until
	# two dumps a half second apart agree.
	local prev cur t0
	prev=$(counters_now)
	t0=$(now_ms)
	while (($(now_ms) - t0 < 5000)); do
		sleep 0.5
		cur=$(counters_now)
		[[ $cur == "$prev" ]] && break
		prev=$cur
	done
	# What the admin's iptables (first on PATH) shows; the same as the daemon's unless
	# "break backend-split" is in effect. All -save dumps before any -L: with the legacy
	# backend, -L creates the tables it lists.
	# stderr kept when not empty: iptables-nft-save warns there about legacy tables.
	in_view iptables-save -c >"$out/iptables-save.txt" 2>"$out/iptables-save.stderr.txt"
	in_view ip6tables-save -c >"$out/ip6tables-save.txt" 2>"$out/ip6tables-save.stderr.txt"
	for b in iptables ip6tables; do
		if [[ ! -s $out/$b-save.stderr.txt ]]; then rm -f "$out/$b-save.stderr.txt"; fi
	done
	# What each backend holds, whatever PATH says.
	for b in nft legacy; do
		in_host "iptables-$b-save" -c >"$out/iptables-save.$b.txt"
		in_host "ip6tables-$b-save" -c >"$out/ip6tables-save.$b.txt"
	done
	# The whole nftables ruleset, text and JSON: Docker 29's own tables with the nftables
	# firewall backend (ip/ip6 docker-bridges), a user's tables, and what iptables-nft made.
	# stderr kept when not empty (nft warns about rules of iptables-nft it cannot print).
	in_host nft list ruleset >"$out/nft-ruleset.txt" 2>"$out/nft-ruleset.stderr.txt"
	in_host nft -j list ruleset >"$out/nft-ruleset.json" 2>>"$out/nft-ruleset.stderr.txt"
	if [[ ! -s $out/nft-ruleset.stderr.txt ]]; then rm -f "$out/nft-ruleset.stderr.txt"; fi
	capture_bundle "$out"
	in_view iptables -w -t nat -L -v -n >"$out/nat.list.txt"
	in_view iptables -w -t filter -L -v -n >"$out/filter.list.txt"
	in_view iptables -w -t raw -L -v -n >"$out/raw.list.txt"
	in_view iptables -w -t nat -L -v -n -x --line-numbers >"$out/nat.list-x-linenumbers.txt"
	dk version --format '{{json .}}' >"$out/docker-version.json"
	dk info --format '{{json .}}' >"$out/docker-info.json"
	dk ps -a --no-trunc >"$out/docker-ps.txt"
	# shellcheck disable=SC2046
	dk network inspect $(dk network ls -q) >"$out/docker-network-inspect.json"
	# shellcheck disable=SC2046
	dk container inspect $(dk ps -aq) >"$out/docker-container-inspect.json"
	in_host ip -j addr show >"$out/ip-addr.json"
	in_host ip -j route show table all >"$out/ip-route.json"
	in_host sysctl net.ipv4.ip_forward net.ipv4.conf.all.forwarding net.ipv6.conf.all.forwarding \
		net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables \
		net.ipv4.conf.docker0.route_localnet >"$out/sysctl.txt" 2>&1 || true
	proxies >"$out/docker-proxy.txt"
	local sv state=${BREAK:-healthy}
	sv=$(dk version --format '{{.Server.Version}}')
	local cmdline=${PROVENANCE_CMD:-"e2e/testbed/dockerhost.sh capture $NAME $2"}
	local fw="" made="DOCKER=$DOCKER BACKEND=$BACKEND PROXY=$PROXY"
	if [[ $DOCKER == 29 ]]; then
		fw=" firewall-backend=$FIREWALL"
		made="$made FIREWALL=$FIREWALL"
	fi
	echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) docker=$sv backend=$BACKEND ($(in_host iptables --version))$fw userland-proxy=$PROXY state=${state// /+} daemon_backend=$DAEMON_BACKEND host_iptables=$HOST_BACKEND ($(in_view iptables --version)) made by: $made $cmdline" >"$out/PROVENANCE"
	log "capture $NAME: wrote $out"
}

# iptscope_bin: prints the iptscope binary to use for bundle.json, or fails if there is none.
iptscope_bin() {
	local bin=${IPTSCOPE_BIN:-}
	[[ $bin == none ]] && return 1
	if [[ -z $bin ]]; then
		bin=$STATE/iptscope
		if [[ ! -x $bin ]]; then
			local repo
			repo=$(cd "$(dirname "$SCRIPT_PATH")/../.." && pwd)
			[[ -f $repo/cmd/iptscope/collect.go ]] || return 1
			command -v go >/dev/null || return 1
			(cd "$repo" && go build -o "$bin" ./cmd/iptscope) >&2 || return 1
		fi
	fi
	"$bin" collect --help >/dev/null 2>&1 || return 1
	echo "$bin"
}

# capture_bundle OUT: OUT/bundle.json from "iptscope collect --netns", run from the root netns
# with the admin's PATH (its iptables decides the "host" backend) and the host's xtables lock.
capture_bundle() {
	local out=$1 bin
	if ! bin=$(iptscope_bin); then
		log "capture $NAME: no iptscope with a collect command; bundle.json skipped"
		return 0
	fi
	if ! env PATH="$HOSTBIN:$SYS_PATH" XTABLES_LOCKFILE="$LOCKFILE" \
		"$bin" collect --netns "$NETNS" --docker-host "unix://$DOCKER_SOCK" -o "$out/bundle.json" \
		2>"$out/bundle-warnings.txt"; then
		log "capture $NAME: iptscope collect failed (see $out/bundle-warnings.txt)"
	fi
	[[ -f $out/bundle.json ]] && chmod 644 "$out/bundle.json"
	sed -i '/^iptscope: wrote /d' "$out/bundle-warnings.txt"
	if [[ ! -s $out/bundle-warnings.txt ]]; then rm -f "$out/bundle-warnings.txt"; fi
}

# ---------------------------------------------------------------- snapshot, break, heal

other_backend() { if [[ $BACKEND == nft ]]; then echo legacy; else echo nft; fi; }

# save_tool FAM BACKEND: iptables-nft-save, ip6tables-legacy-save, ...
save_tool() { if [[ $1 == v4 ]]; then echo "iptables-$2-save"; else echo "ip6tables-$2-save"; fi; }

# tables_of: table names in an iptables-save text on stdin.
tables_of() { sed -n 's/^\*//p'; }

# normalize: an iptables-save text without comments and counters, tables sorted by name (nft
# prints them in creation order), empty tables dropped (legacy cannot delete a table once
# "iptables -L" created it).
normalize() {
	sed -e '/^#/d' -e 's/ \[[0-9]*:[0-9]*\]$//' -e 's/^\[[0-9]*:[0-9]*\] //' | awk '
		function flush() { if (t != "" && !empty) printf "%s", buf; buf = ""; t = "" }
		/^\*/ { flush(); t = substr($0, 2); empty = 1 }
		{ if (t != "") buf = buf t "\t" $0 "\n" }
		/^-A / || (/^:/ && $2 != "ACCEPT") { empty = 0 }
		/^COMMIT/ { flush() }
		END { flush() }' | sort -s -t "$(printf '\t')" -k1,1
}

# xt_table FAMILY NAME: 0 if the nftables table is one that iptables-nft (or arptables-nft,
# ebtables-nft) owns; those are saved and restored with iptables-nft-save/-restore.
xt_table() {
	case "$1 $2" in
	"ip filter" | "ip nat" | "ip mangle" | "ip raw" | "ip security") return 0 ;;
	"ip6 filter" | "ip6 nat" | "ip6 mangle" | "ip6 raw" | "ip6 security") return 0 ;;
	"arp filter" | "bridge filter" | "bridge nat" | "bridge broute") return 0 ;;
	esac
	return 1
}

# native_tables: "FAMILY NAME" per line of each nftables table of the host that iptables-nft does
# not own: Docker 29's docker-bridges (nftables firewall backend), a user's tables.
native_tables() {
	local fam name
	in_host nft list tables 2>/dev/null | awk '$1 == "table" {print $2, $3}' | while read -r fam name; do
		xt_table "$fam" "$name" || echo "$fam $name"
	done
}

# nft_table_text FAMILY NAME: the table as nft prints it without counter values ("counter"
# stays): what a snapshot keeps and a heal compares.
nft_table_text() { in_host nft -s list table "$1" "$2"; }

take_snapshot() {
	local fam b tmp=$SNAP.new name
	rm -rf "$tmp"
	mkdir -p "$tmp/nft"
	for fam in v4 v6; do
		for b in nft legacy; do
			in_host "$(save_tool "$fam" "$b")" >"$tmp/$fam.$b"
		done
	done
	while read -r fam name; do
		[[ -n $fam ]] && nft_table_text "$fam" "$name" >"$tmp/nft/$fam.$name"
	done < <(native_tables)
	in_host sysctl -n net.ipv4.ip_forward >"$tmp/ip_forward"
	in_host sysctl -n net.ipv6.conf.all.forwarding >"$tmp/ip6_forward" 2>/dev/null || true
	rm -rf "$SNAP"
	mv "$tmp" "$SNAP"
}

cmd_snapshot() {
	need_root
	set_host "${1:-}"
	require_up
	[[ -z $BREAK ]] || die "snapshot $NAME: host is broken ($BREAK); run: $0 heal $NAME"
	take_snapshot
	log "snapshot $NAME: saved in $SNAP"
}

# wipe_table TOOL TABLE: what a firewall reload does to one table: flush every chain, delete
# every user chain, built-in policies back to ACCEPT. TOOL is iptables, ip6tables-legacy, ...
wipe_table() {
	local tool=$1 t=$2 c
	in_host "$tool" -w -t "$t" -F
	in_host "$tool" -w -t "$t" -X
	for c in $(in_host "$tool" -w -t "$t" -S | awk '$1 == "-P" {print $2}'); do
		in_host "$tool" -w -t "$t" -P "$c" ACCEPT
	done
}

# delete_jumps TABLE CHAIN TARGET: delete every rule of TABLE/CHAIN that jumps to TARGET.
delete_jumps() {
	local t=$1 chain=$2 target=$3 line
	local -a words
	while IFS= read -r line; do
		read -ra words <<<"$line"
		words[0]=-D
		in_host iptables -w -t "$t" "${words[@]}"
	done < <(in_host iptables -w -t "$t" -S "$chain" | grep -E -- "^-A $chain .*-j $target\$" || true)
}

KINDS="nat-docker-flushed nat-docker-deleted prerouting-jump-deleted ip-forward-off stale-dnat firewall-reload backend-split legacy-leftovers
user-jump-deleted forward-jump-deleted filter-docker-flushed masquerade-deleted port-accept-deleted raw-endpoint-deleted
docker-user-deleted forward-drop-inserted forward-reject-bridge docker-user-port-drop reload-policy-drop raw-flushed
proxy-killed isolation-flushed internal-flushed nat-return-deleted bridge-down veth-detached
br-netfilter-off route-localnet-off hairpin-off dnat-repointed saved-rules-restored"
# Docker 29's nftables firewall backend (ip-forward-off applies to it too).
NFT_KINDS="nft-table-deleted nft-bridge-chain-flushed nft-vmap-element-deleted nft-dnat-deleted nft-masq-flushed
nft-user-table-drop nft-iptables-forward-drop"
NFT_KINDS=$(echo $NFT_KINDS)
KINDS="$(echo $KINDS) $NFT_KINDS"

# web_ip: the address of container web on docker0.
web_ip() { dk container inspect -f '{{.NetworkSettings.Networks.bridge.IPAddress}}' web; }

# delete_rule TABLE LINE: delete the rule "-A CHAIN SPEC" (as iptables -S prints it); dies when
# it is not there.
delete_rule() {
	local t=$1 line=$2
	local -a words
	[[ -n $line ]] || die "break $NAME: no such rule in $t"
	read -ra words <<<"$line"
	words[0]=-D
	in_host iptables -w -t "$t" "${words[@]}"
}

# web_veth prints container web's host-side veth: the peer of its eth0
# (iflink), found by index in the host's namespace.
web_veth() {
	local idx veth
	idx=$(dk exec web /bin/busybox cat /sys/class/net/eth0/iflink | tr -d '\r')
	veth=$(ip -n "$NAME" -o link show | awk -F': ' -v i="$idx" '$1 == i {print $2}' | cut -d@ -f1)
	[[ -n $veth ]] || die "$NAME: no host veth with index $idx for web"
	echo "$veth"
}

cmd_break() {
	need_root
	set_host "${1:-}"
	local kind=${2:-}
	require_up
	[[ " $KINDS " == *" $kind "* ]] || die "break: unknown KIND '$kind' (known: $KINDS)"
	if [[ $FIREWALL == nftables && " $NFT_KINDS ip-forward-off " != *" $kind "* ]]; then
		die "break $NAME: $kind needs Docker's iptables firewall backend; this host runs the nftables one (its kinds: $NFT_KINDS ip-forward-off)"
	fi
	if [[ $FIREWALL != nftables && " $NFT_KINDS " == *" $kind "* ]]; then
		die "break $NAME: $kind needs Docker 29's nftables firewall backend (FIREWALL=nftables)"
	fi
	# Kinds that break a rule one era does not write fail here with the reason, not later with
	# iptables' "No chain/target/match by that name".
	case "$DOCKER $kind" in
	"29 isolation-flushed") die "break $NAME: Docker 29 writes no DOCKER-ISOLATION chains (internal-flushed is 29's analogue)" ;;
	"29 nat-return-deleted") die "break $NAME: Docker 29 writes no nat DOCKER -i BRIDGE -j RETURN" ;;
	"29 internal-flushed") ;;
	*" internal-flushed") die "break $NAME: only Docker 29 writes DOCKER-INTERNAL" ;;
	esac
	[[ -d $SNAP ]] || take_snapshot
	local host_backend=$HOST_BACKEND fam t line
	case $kind in
	nat-docker-flushed)
		in_host iptables -w -t nat -F DOCKER
		;;
	nat-docker-deleted)
		delete_jumps nat PREROUTING DOCKER
		delete_jumps nat OUTPUT DOCKER
		in_host iptables -w -t nat -F DOCKER
		in_host iptables -w -t nat -X DOCKER
		;;
	prerouting-jump-deleted)
		in_host iptables -w -t nat -D PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
		;;
	ip-forward-off)
		in_host sysctl -qw net.ipv4.ip_forward=0
		;;
	stale-dnat)
		# Docker's own rule for 8080 (its shape differs with userland-proxy), re-pointed.
		line=$(in_host iptables -w -t nat -S DOCKER | grep -E -- '--dport 8080 -j DNAT' | head -1)
		[[ -n $line ]] || die "break $NAME stale-dnat: no DNAT rule for 8080 in nat DOCKER"
		local -a words
		read -ra words <<<"${line% --to-destination *} --to-destination 172.17.0.250:80"
		words[0]=-I
		in_host iptables -w -t nat "${words[0]}" DOCKER 1 "${words[@]:2}"
		;;
	firewall-reload)
		# iptables.service / netfilter-persistent: every table of both families (those that
		# exist: a reload does not create tables Docker never used).
		for fam in v4 v6; do
			local tool=iptables
			[[ $fam == v6 ]] && tool=ip6tables
			for t in $(in_host "$tool-save" | tables_of); do wipe_table "$tool" "$t"; done
		done
		;;
	backend-split)
		host_backend=$(other_backend)
		link_iptables "$STATE/bin-$host_backend" "$host_backend"
		;;
	user-jump-deleted)
		in_host iptables -w -D FORWARD -j DOCKER-USER
		;;
	forward-jump-deleted)
		# 28+: the one jump into Docker's forwarding chains; 20.10-27: the isolation jump and
		# docker0's jump to filter DOCKER (its per-port ACCEPTs).
		if in_host iptables -w -S DOCKER-FORWARD >/dev/null 2>&1; then
			in_host iptables -w -D FORWARD -j DOCKER-FORWARD
		else
			in_host iptables -w -D FORWARD -j DOCKER-ISOLATION-STAGE-1
			in_host iptables -w -D FORWARD -o docker0 -j DOCKER
		fi
		;;
	filter-docker-flushed)
		in_host iptables -w -F DOCKER
		;;
	masquerade-deleted)
		delete_rule nat "$(in_host iptables -w -t nat -S POSTROUTING | grep -E -- '^-A POSTROUTING -s [0-9./]+ ! -o docker0 -j MASQUERADE$' | head -1)"
		;;
	port-accept-deleted)
		delete_rule filter "$(in_host iptables -w -S DOCKER | grep -E -- "^-A DOCKER -d $(web_ip)/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT\$" | head -1)"
		;;
	raw-endpoint-deleted)
		# 28.2+: web's direct-access DROP.
		delete_rule raw "$(in_host iptables -w -t raw -S PREROUTING | grep -E -- "^-A PREROUTING -d $(web_ip)/32 ! -i docker0 -j DROP\$" | head -1)"
		;;
	docker-user-deleted)
		in_host iptables -w -D FORWARD -j DOCKER-USER
		in_host iptables -w -F DOCKER-USER
		in_host iptables -w -X DOCKER-USER
		;;
	forward-drop-inserted)
		in_host iptables -w -I FORWARD 1 -j DROP
		;;
	forward-reject-bridge)
		in_host iptables -w -I FORWARD 1 -i docker0 -j REJECT
		;;
	docker-user-port-drop)
		# The admin closes published port 8080 the way Docker's docs say (original port).
		in_host iptables -w -I DOCKER-USER -p tcp -m conntrack --ctorigdstport 8080 -j DROP
		;;
	reload-policy-drop)
		for t in $(in_host iptables-save | tables_of); do wipe_table iptables "$t"; done
		in_host iptables -w -P FORWARD DROP
		;;
	raw-flushed)
		in_host iptables -w -t raw -F
		;;
	isolation-flushed)
		in_host iptables -w -F DOCKER-ISOLATION-STAGE-2
		;;
	internal-flushed)
		in_host iptables -w -F DOCKER-INTERNAL
		;;
	nat-return-deleted)
		in_host iptables -w -t nat -D DOCKER -i docker0 -j RETURN
		;;
	bridge-down)
		ip -n "$NAME" link set docker0 down
		;;
	saved-rules-restored)
		in_host iptables-save | in_host iptables-restore -w 5 --noflush
		;;
	dnat-repointed)
		line=$(in_host iptables -w -t nat -S DOCKER | grep -E -- '--dport 8080 -j DNAT' | head -1)
		[[ -n $line ]] || die "break $NAME dnat-repointed: no DNAT rule for 8080 in nat DOCKER"
		delete_rule nat "$line"
		local -a words
		read -ra words <<<"${line%:80}:81"
		words[0]=-I
		in_host iptables -w -t nat "${words[@]:0:2}" 1 "${words[@]:2}"
		;;
	br-netfilter-off | route-localnet-off)
		local key=net.bridge.bridge-nf-call-iptables
		[[ $kind == route-localnet-off ]] && key=net.ipv4.conf.docker0.route_localnet
		echo "nsenter --net=/var/run/netns/$NAME sysctl -qw $key=$(in_host sysctl -n "$key")" >>"$STATE/undo"
		in_host sysctl -qw "$key=0"
		;;
	hairpin-off)
		local veth
		veth=$(web_veth)
		echo "ip -n $NAME link set $veth type bridge_slave hairpin $(ip -n "$NAME" -d link show "$veth" | grep -o 'hairpin [a-z]*' | cut -d' ' -f2)" >>"$STATE/undo"
		ip -n "$NAME" link set "$veth" type bridge_slave hairpin off
		;;
	veth-detached)
		# web's host-side veth: the peer of its eth0 (iflink), found by index.
		local veth
		veth=$(web_veth)
		# Re-attaching resets the port's hairpin mode (on with the proxy off): undo restores it too.
		echo "ip -n $NAME link set $veth master docker0 up && ip -n $NAME link set $veth type bridge_slave hairpin $(ip -n "$NAME" -d link show "$veth" | grep -o 'hairpin [a-z]*' | cut -d' ' -f2)" >>"$STATE/undo"
		ip -n "$NAME" link set "$veth" nomaster
		;;
	proxy-killed)
		# The docker-proxy processes of port 8080 (both families); dockerd does not restart them.
		local pid n=0
		for pid in $(cat /proc/"$(awk '$1 == "dockerd" {print $2}' "$STATE/pids")"/task/*/children 2>/dev/null); do
			[[ $(cat "/proc/$pid/comm" 2>/dev/null) == docker-proxy ]] || continue
			tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- '-host-port 8080 ' || continue
			kill -KILL "$pid" && n=$((n + 1))
		done
		((n > 0)) || die "break $NAME proxy-killed: no docker-proxy for 8080 (userland-proxy off?)"
		;;
	nft-table-deleted)
		in_host nft delete table ip docker-bridges
		;;
	nft-bridge-chain-flushed)
		# docker0's filter chain for traffic into the bridge: the per-port accepts, ICC and the
		# final "UNPUBLISHED PORT DROP" go; with the chain empty, the hook's accept policy lets
		# everything reach the containers (ports answer, protection gone).
		in_host nft flush chain ip docker-bridges filter-forward-in__docker0
		;;
	nft-vmap-element-deleted)
		# filter-FORWARD no longer jumps to docker0's in-chain: the same loss of protection as
		# a flushed chain, with the chain itself intact.
		in_host nft delete element ip docker-bridges filter-forward-in-jumps '{ "docker0" }'
		;;
	nft-dnat-deleted)
		local handle
		handle=$(in_host nft -a list chain ip docker-bridges nat-prerouting-and-output |
			awk '/tcp dport 8080 / && /dnat to/ && /# handle / {print $NF; exit}')
		[[ -n $handle ]] || die "break $NAME nft-dnat-deleted: no DNAT rule for 8080 in nat-prerouting-and-output"
		in_host nft delete rule ip docker-bridges nat-prerouting-and-output handle "$handle"
		;;
	nft-masq-flushed)
		in_host nft flush chain ip docker-bridges nat-postrouting-out__docker0
		;;
	nft-user-table-drop)
		# A user's own firewall closes published port 8080 the nftables way: by the original
		# destination port (after DNAT the packet's own is the container's 80), in a base chain
		# before Docker's (priority filter - 1). Deliberate: never Docker's to repair.
		in_host nft -f - <<-'EOF'
			table inet myfw {
				chain forward {
					type filter hook forward priority filter - 1; policy accept;
					meta l4proto tcp ct original proto-dst 8080 counter drop
				}
			}
		EOF
		;;
	nft-iptables-forward-drop)
		# What an earlier iptables-mode Docker leaves behind (docker-facts.md §4.15): its
		# FORWARD DROP policy in iptables-nft's table ip filter, a second forward hook.
		in_host iptables-nft -w -P FORWARD DROP
		;;
	legacy-leftovers)
		local other
		other=$(other_backend)
		for fam in v4 v6; do
			local tool=iptables
			[[ $fam == v6 ]] && tool=ip6tables
			for t in nat filter; do
				if in_host "$tool-save" | tables_of | grep -qx "$t"; then
					in_host "$tool-save" -t "$t" | in_host "$tool-$other-restore" -w
				fi
			done
		done
		;;
	esac
	cat >"$BREAK_FILE" <<-EOF
		BREAK="${BREAK:+$BREAK }$kind"
		DAEMON_BACKEND=$BACKEND
		HOST_BACKEND=$host_backend
	EOF
	log "break $NAME: $kind (daemon backend $BACKEND, admin's iptables $host_backend)"
}

# heal_backend FAM BACKEND: puts back the snapshot of one family in one backend. Tables the
# snapshot does not have are wiped (nft: deleted).
heal_backend() {
	local fam=$1 b=$2 snapf=$SNAP/$1.$2 t tool nftfam=ip
	tool=$(save_tool "$fam" "$b")
	tool=${tool%-save}
	[[ $fam == v6 ]] && nftfam=ip6
	for t in $(in_host "$tool-save" | tables_of); do
		if ! tables_of <"$snapf" | grep -qx "$t"; then
			if [[ $b == nft ]]; then
				in_host nft delete table "$nftfam" "$t"
			else
				wipe_table "$tool" "$t"
			fi
		fi
	done
	if [[ -s $snapf ]]; then in_host "$tool-restore" -w <"$snapf"; fi
}

# heal_nft: puts back the snapshot's native nftables tables, each replaced whole, and deletes
# those it does not have (a user's table a break added), in one nft transaction. Docker 29
# keeps its own model of docker-bridges and rewrites whole chains from it (it never deletes a
# rule by handle), so a table put back as it was stays in step with the daemon.
heal_nft() {
	local fam name f script
	script=$(mktemp "${TMPDIR:-/tmp}/dockerhost-heal.XXXXXX")
	while read -r fam name; do
		[[ -n $fam && ! -f $SNAP/nft/$fam.$name ]] && echo "delete table $fam $name" >>"$script"
	done < <(native_tables)
	for f in "$SNAP"/nft/*; do
		[[ -f $f ]] || continue
		name=${f##*/}
		fam=${name%%.*} name=${name#*.}
		# Declared first so that the delete cannot fail when a break deleted the table.
		printf 'table %s %s {}\ndelete table %s %s\n' "$fam" "$name" "$fam" "$name" >>"$script"
		cat "$f" >>"$script"
	done
	local rc=0
	if [[ -s $script ]]; then in_host nft -f "$script" || rc=$?; fi
	rm -f "$script"
	return $rc
}

# nft_matches_snapshot: 0 if the native nftables tables equal the snapshot's (modulo counters).
nft_matches_snapshot() {
	local fam name f bad=0
	diff -u <(ls "$SNAP/nft" 2>/dev/null | sort) <(native_tables | tr ' ' . | sort) >&2 || bad=1
	for f in "$SNAP"/nft/*; do
		[[ -f $f ]] || continue
		name=${f##*/}
		fam=${name%%.*} name=${name#*.}
		diff -u "$f" <(nft_table_text "$fam" "$name" 2>&1) >&2 || bad=1
	done
	return $bad
}

cmd_heal() {
	need_root
	set_host "${1:-}"
	require_up
	[[ -d $SNAP ]] || die "heal $NAME: no snapshot in $SNAP"
	local fam b v
	heal_nft || die "heal $NAME: nft could not put back the snapshot's nftables tables"
	for fam in v4 v6; do
		for b in nft legacy; do heal_backend "$fam" "$b"; done
	done
	v=$(cat "$SNAP/ip_forward")
	[[ $(in_host sysctl -n net.ipv4.ip_forward) == "$v" ]] || in_host sysctl -qw "net.ipv4.ip_forward=$v"
	if [[ -s $SNAP/ip6_forward ]]; then
		v=$(cat "$SNAP/ip6_forward")
		[[ $(in_host sysctl -n net.ipv6.conf.all.forwarding) == "$v" ]] || in_host sysctl -qw "net.ipv6.conf.all.forwarding=$v"
	fi
	local was=$BREAK
	# Sysctls and links a break recorded how to undo.
	if [[ -s $STATE/undo ]]; then
		bash "$STATE/undo"
		rm -f "$STATE/undo"
	fi
	# Links: bridge-down.
	ip -n "$NAME" link set docker0 up
	if [[ " $BREAK " == *" proxy-killed "* ]]; then
		# Only a container restart brings a docker-proxy back; Docker then re-adds web's rules
		# at the end of its chains, so the snapshot is taken again.
		dk restart -t 1 web >/dev/null
		take_snapshot
	fi
	rm -f "$BREAK_FILE"
	rm -rf "$STATE"/bin-nft "$STATE"/bin-legacy
	load_env
	# Verify: every dump equals the snapshot (modulo counters, comments, empty tables) ...
	local bad=0
	for fam in v4 v6; do
		for b in nft legacy; do
			if ! diff -u <(normalize <"$SNAP/$fam.$b") <(in_host "$(save_tool "$fam" "$b")" | normalize) >&2; then
				log "heal $NAME: $fam $b rules differ from the snapshot"
				bad=1
			fi
		done
	done
	if ! nft_matches_snapshot; then
		log "heal $NAME: native nftables tables differ from the snapshot"
		bad=1
	fi
	((bad == 0)) || die "heal $NAME: rules not restored"
	# ... and the ports answer again.
	if wait_for "heal: all ports answer as on a healthy host" "$WAIT_SECS" probe_all; then
		log "heal $NAME: healed${was:+ from $was}; rules equal the snapshot, all ports answer"
		return 0
	fi
	probe_all >&2 || true
	die "heal $NAME: rules restored but the probe still fails after ${WAIT_SECS}s"
}

# ---------------------------------------------------------------- admin-rules

# admin-rules: what an admin adds by hand, which repairs must leave alone. Idempotent.
cmd_admin_rules() {
	need_root
	set_host "${1:-}"
	require_up
	[[ -z $BREAK ]] || die "admin-rules $NAME: host is broken ($BREAK); run: $0 heal $NAME"
	in_host iptables -w -C DOCKER-USER -s 198.51.100.0/24 -j DROP 2>/dev/null ||
		in_host iptables -w -I DOCKER-USER -s 198.51.100.0/24 -j DROP
	in_host iptables -w -n -L ADMIN-CHAIN >/dev/null 2>&1 || in_host iptables -w -N ADMIN-CHAIN
	in_host iptables -w -C ADMIN-CHAIN -s 203.0.113.0/24 -p tcp --dport 22 -j DROP 2>/dev/null ||
		in_host iptables -w -A ADMIN-CHAIN -s 203.0.113.0/24 -p tcp --dport 22 -j DROP
	in_host iptables -w -C INPUT -j ADMIN-CHAIN 2>/dev/null || in_host iptables -w -I INPUT -j ADMIN-CHAIN
	take_snapshot
	log "admin-rules $NAME: DOCKER-USER -s 198.51.100.0/24 -j DROP, ADMIN-CHAIN (from INPUT); snapshot re-taken"
}

# proxies: command lines of the docker-proxy processes of this host's dockerd.
proxies() {
	local role pid start c
	[[ -f $STATE/pids ]] || return 0
	while read -r role pid start; do
		[[ $role == dockerd && $(pid_start "$pid") == "$start" ]] || continue
		for c in $(cat /proc/"$pid"/task/*/children 2>/dev/null); do
			[[ $(cat "/proc/$c/comm" 2>/dev/null) == docker-proxy ]] || continue
			tr '\0' ' ' <"/proc/$c/cmdline" | sed "s|$SID_DIR/bin/||; s|$TRIXIE_DIR/bin/||; s|$D29_DIR/bin/||; s| \$||"
			echo
		done | sort
	done <"$STATE/pids"
}

# ---------------------------------------------------------------- down

# gone PID START: 0 once PID is no longer the process that started at START.
gone() { [[ $(pid_start "$1") != "$2" ]]; }

# stop_pid PID START [SECS]: TERM, wait (SECS of wall clock), KILL — only if PID still is the
# process we started.
stop_pid() {
	local pid=$1 start=$2 secs=${3:-20}
	[[ -n $start && $(pid_start "$pid") == "$start" ]] || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	wait_for "stop: pid $pid ($(cat "/proc/$pid/comm" 2>/dev/null)) exited on SIGTERM" "$secs" gone "$pid" "$start" && return 0
	log "down $NAME: pid $pid ignored SIGTERM for ${secs}s, sending SIGKILL"
	kill -KILL "$pid" 2>/dev/null || true
	wait_for "stop: pid $pid exited on SIGKILL" 10 gone "$pid" "$start" || true
}

# host_cgroup_dirs: this host's cgroup folders (cgroup v1 hierarchies and v2), deepest first.
host_cgroup_dirs() {
	local d
	for d in /sys/fs/cgroup/*"$CGPARENT" /sys/fs/cgroup"$CGPARENT"; do
		if [[ -d $d ]]; then find "$d" -depth -type d; fi
	done
	return 0
}

# owned_pids: "pid start" of processes that belong to this host though not recorded at start:
# children of its dockerd (docker-proxy), its containerd shims, processes in its cgroups.
owned_pids() {
	local role pid start c f
	if [[ -f $STATE/pids ]]; then
		while read -r role pid start; do
			[[ -n $start && $(pid_start "$pid") == "$start" ]] || continue
			for c in $(cat /proc/"$pid"/task/*/children 2>/dev/null); do echo "$c $(pid_start "$c")"; done
		done <"$STATE/pids"
	fi
	# Shims daemonize away from containerd; they carry its address on their command line.
	for f in /proc/[0-9]*/cmdline; do
		c=${f#/proc/}
		c=${c%/cmdline}
		if tr '\0' '\n' 2>/dev/null <"$f" | grep -qxF -- "$CTRD_SOCK"; then
			if grep -q containerd-shim "/proc/$c/comm" 2>/dev/null; then echo "$c $(pid_start "$c")"; fi
		fi
	done
	while read -r d; do
		if [[ -f $d/cgroup.procs ]]; then while read -r c; do echo "$c $(pid_start "$c")"; done <"$d/cgroup.procs"; fi
	done < <(host_cgroup_dirs)
	return 0
}

cmd_down() {
	need_root
	set_host "$1"
	load_env
	local role pid start extra
	# Collect the helpers first: once dockerd and containerd are gone they cannot be found.
	extra=$(owned_pids | sort -u)
	# busybox httpd as PID 1 ignores SIGTERM: without this dockerd waits 10 s per container.
	if [[ -S $DOCKER_SOCK ]] && timeout 5 env PATH="$BIN:$SYS_PATH" docker -H "unix://$DOCKER_SOCK" version >/dev/null 2>&1; then
		local ids
		ids=$(timeout 10 env PATH="$BIN:$SYS_PATH" docker -H "unix://$DOCKER_SOCK" ps -q 2>/dev/null || true)
		if [[ -n $ids ]]; then
			# shellcheck disable=SC2086
			timeout 30 env PATH="$BIN:$SYS_PATH" docker -H "unix://$DOCKER_SOCK" stop -t 1 $ids >/dev/null 2>&1 || true
		fi
	fi
	if [[ -f $STATE/pids ]]; then
		# dockerd first (it stops containers and docker-proxy), then containerd.
		while read -r role pid start; do
			if [[ $role == dockerd ]]; then stop_pid "$pid" "$start" 60; fi
		done <"$STATE/pids"
		extra=$(printf '%s\n%s\n' "$extra" "$(owned_pids)" | sort -u)
		while read -r pid start; do
			if [[ -n $pid ]]; then stop_pid "$pid" "$start" 5; fi
		done <<<"$extra"
		while read -r role pid start; do
			if [[ $role != dockerd ]]; then stop_pid "$pid" "$start" 20; fi
		done <"$STATE/pids"
	fi
	while read -r pid start; do
		if [[ -n $pid ]]; then stop_pid "$pid" "$start" 5; fi
	done < <(owned_pids | sort -u)
	# Mounts left behind (overlay, netns bind mounts, shm), deepest first.
	local dir m
	for dir in "$STATE" "$EXEC_ROOT"; do
		for m in $(awk -v d="$dir" '$5 == d || index($5, d "/") == 1 {print $5}' /proc/self/mountinfo | sort -r); do
			umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "down $NAME: cannot unmount $m"
		done
	done
	for m in "$NAME" "$CNAME"; do
		if [[ -e /var/run/netns/$m ]]; then ip netns del "$m" || log "down $NAME: cannot delete netns $m"; fi
	done
	while read -r d; do
		rmdir "$d" 2>/dev/null || log "down $NAME: cannot remove cgroup $d"
	done < <(host_cgroup_dirs)
	rm -rf "$EXEC_ROOT"
	rmdir /run/iptscope 2>/dev/null || true
	if [[ -d $STATE ]]; then
		if awk -v d="$STATE" 'index($5, d "/") == 1 {f=1} END {exit !f}' /proc/self/mountinfo; then
			log "down $NAME: mounts remain under $STATE, keeping it"
		elif [[ ${KEEP_STATE:-0} == 1 ]]; then
			rm -f "$STATE/env" "$STATE/pids"
		else
			rm -rf "$STATE"
		fi
	fi
	log "down $NAME: done"
}

# ---------------------------------------------------------------- main

usage() {
	sed -n '2,/IPTSCOPE_BIN=none skips/p' "$SCRIPT_PATH" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

main() {
	local cmd=${1:-}
	[[ -n $cmd ]] || usage
	shift
	case $cmd in
	fetch-sid) cmd_fetch_sid "$@" ;;
	fetch-trixie) cmd_fetch_trixie "$@" ;;
	build-29) cmd_build_29 "$@" ;;
	up) cmd_up "$@" ;;
	layout) cmd_layout "$@" ;;
	probe) cmd_probe "$@" ;;
	capture) cmd_capture "$@" ;;
	snapshot) cmd_snapshot "$@" ;;
	break) cmd_break "$@" ;;
	heal) cmd_heal "$@" ;;
	admin-rules) cmd_admin_rules "$@" ;;
	down) cmd_down "$@" ;;
	restart) cmd_restart "$@" ;;
	docker)
		need_root
		set_host "${1:-}"
		shift
		require_up
		dk "$@"
		;;
	ipt)
		need_root
		set_host "${1:-}"
		shift
		require_up
		in_host "$@"
		;;
	env)
		set_host "${1:-}"
		require_up
		cat "$STATE/env"
		if [[ -f $BREAK_FILE ]]; then cat "$BREAK_FILE"; else echo "BREAK=\"\""; echo "DAEMON_BACKEND=$BACKEND"; echo "HOST_BACKEND=$BACKEND"; fi
		;;
	-h | --help | help) usage ;;
	*) die "unknown subcommand '$cmd' (try --help)" ;;
	esac
}

# Sourced (e.g. by other scripts): define functions only.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
	main "$@"
fi
