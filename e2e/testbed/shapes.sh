#!/usr/bin/env bash
# shapes.sh — legal but less common Docker setups ("shapes") on a dockerhost.sh host, to prove
# that iptscope gives no false alarm on a healthy host whatever shape it has (issue 10).
#
#   shapes.sh layout NAME             create every shape the host's Docker version supports
#                                     (on top of an "up" host, without dockerhost.sh layout), add
#                                     the IPv6 addresses of the testbed veth pair, wait until
#                                     every published TCP port answers
#   shapes.sh list NAME               print the shapes of that version, one "NAME  WHAT" a line
#   shapes.sh probe NAME              HTTP GET every published TCP port from where it must
#                                     answer; one line per port; exit 1 if one does not answer
#                                     (AFTER_RESTART=1: after "dockerhost.sh restart")
#   shapes.sh case NAME CASE          create only one of the four cases of issue 10 (below)
#   shapes.sh capture NAME CASE OUT   "case", probe, then OUT/bundle.json from `iptscope collect`
#                                     (as dockerhost.sh capture does), OUT/probe.txt, OUT/PROVENANCE
#   shapes.sh fixtures DIR            every capture of fixtures/healthy-shapes-* (FIXTURES below),
#                                     each on its own throw-away host: shapes.sh fixtures fixtures
#
# CASES (the false alarms of issue 10, each captured into fixtures/healthy-shapes-CASE/*):
#   two-host-ports    -p 18080:80 -p 18081:80 (one filter ACCEPT serves both DNATs), and the
#                     same on a dual-stack network (-p 8700:80 -p 8701:80)
#   two-host-addrs    -p HOSTIP:8800:80 -p 127.0.0.1:8800:80
#   ipv6-only         28+: network --ipv6 --ipv4=false, container -p 8702:80
#   routed-ignored    <27: network -o com.docker.network.bridge.gateway_mode_ipv4=routed (the
#                     daemon ignores the option and NATs the network), container -p 8900:80
#   gateway-modes     28+: the shapes routed, unprot and trusted (not a case of issue 10: what
#                     28's other gateway modes and options write, as unit-test data)
#   all               every shape of the version at once (Docker 29 with FIREWALL=nftables: what
#                     its nftables backend writes for each; userland-proxy on only: with it off
#                     29.8.1 refuses the second host port of one container port, p2, with
#                     "MASQ TO OWN PORT ... rule exists" and the container does not start)
#
# Env: as dockerhost.sh (TESTBED_ROOT, ...); IPTSCOPE_BIN for capture (as dockerhost.sh).
#
# Same rules of the house as dockerhost.sh: everything happens inside the host's and the
# client's namespaces; traffic only between them.

set -euo pipefail

SHAPES_PATH=$(readlink -f "${BASH_SOURCE[0]}")
# shellcheck source=dockerhost.sh
source "$(dirname "$SHAPES_PATH")/dockerhost.sh"

# The testbed veth pair's IPv6 addresses (inside the two namespaces only).
HOST6=fd00:198:18::1
CLIENT6=fd00:198:18::2

shapes_die() { echo "shapes: error: $*" >&2; exit 1; }
shapes_log() { echo "shapes: $*" >&2; }

# major_of: the host's Docker major version (20, 26, 28, 29).
major_of() { echo "${DOCKER%%.*}"; }

# shapes_list: the shapes of this host's version, "name what" per line. The order is the
# order "layout" creates them in.
shapes_list() {
	local m
	m=$(major_of)
	cat <<-EOF
		p2        two host ports to one container port: -p 18080:80 -p 18081:80
		haddr     one container port on two host addresses: -p $(host_ip):8800:80 -p 127.0.0.1:8800:80
		range     a tcp range: -p 7100-7102:7100-7102
		urange    a udp range: -p 7200-7201:7200-7201/udp
		udp       udp only: -p 5353:53/udp
		tu        tcp and udp on the same port: -p 8300:80 -p 8300:80/udp
		lo        loopback only: -p 127.0.0.1:9300:80
		lo6       IPv6 loopback only: -p [::1]:9301:80
		hostip    a host address: -p $(host_ip):9302:80
		random    a random host port: -p 80
		rrange    a host range for one port: -p 9310-9319:80
		multi     a container on two networks (bridge + shnet): -p 8400:80
		hostmode  --network host
		nonemode  --network none
		ctrmode   --network container:p2
		stopped   stopped, -p 8500:80
		paused    paused, -p 8501:80
		created   created, never started, -p 8502:80
		internal  an --internal network's container
		noicc     enable_icc=false network, -p 8600:80 and a second container
		nomasq    enable_ip_masquerade=false network, -p 8601:80
		custom    bridge name shbr0 and MTU 1400, -p 8602:80
		snat      host_ipv4 (SNAT to the host's address instead of MASQUERADE), -p 8603:80
		many      12 containers on one network, -p 9400-9411 -> 80
		inticc    an --internal, enable_icc=false network with two containers
	EOF
	if [[ $BACKEND == legacy ]]; then
		echo "v6        dual-stack network (--ipv6): -p 8700:80 (one IPv6 port: see legacy6_note)"
	else
		echo "v6        dual-stack network (--ipv6): -p 8700:80 -p 8701:80"
	fi
	if ((m >= 28)) && [[ $BACKEND == legacy ]]; then
		echo "v6only    IPv6-only network (--ipv6 --ipv4=false), a container without ports"
	elif ((m >= 28)); then
		echo "v6only    IPv6-only network (--ipv6 --ipv4=false): -p 8702:80"
	fi
	if ((m < 27)); then
		echo "routedign gateway_mode_ipv4=routed, ignored by this version: -p 8900:80"
	fi
	if ((m >= 28)); then
		echo "routed    gateway_mode_ipv4=routed: -p 8910:80 (no DNAT; [::] through docker-proxy)"
		echo "unprot    gateway_mode_ipv4=nat-unprotected: -p 8911:80"
		echo "trusted   trusted_host_interfaces=tbhost0: -p 8912:80"
	fi
}

# legacy6_note: why the legacy backend gets one published IPv6 port only. ip6tables-legacy
# 1.8.9 (Debian 12) answers `-C` as if the rule existed when an existing rule differs only in
# its match or target data (--dport, --to-destination): checked by hand in a scratch netns.
# Docker checks every rule with -C before it adds it, so after the first IPv6 DNAT it adds no
# other: the second IPv6 port of a host does not answer (seen on real 20.10 and 28.5, legacy,
# proxy off; with the proxy on docker-proxy carries it). iptscope reports that as dnat-missing,
# rightly: it is not a healthy host, so the healthy shapes leave it out.

HTTPD_ARGS=(bb:local /bin/busybox httpd -f -p 80 -h /www)
SLEEP_ARGS=(bb:local /bin/busybox sleep 1000000)

# run NAME ARGS...: docker run -d --name NAME ARGS (idempotent: an existing container is
# left as it is).
run() {
	local n=$1
	shift
	dk container inspect "$n" >/dev/null 2>&1 || dk run -d --name "$n" "$@" >/dev/null
}

net() { # name opts...
	local n=$1
	shift
	dk network inspect "$n" >/dev/null 2>&1 || dk network create "$@" "$n" >/dev/null
}

# v6_daemon: whether this daemon gives IPv6 networks ip6tables rules of their own. The testbed's
# daemon.json only sets the proxy; 27+ writes ip6tables by default.
v6_daemon() { (($(major_of) >= 27)); }

# add_veth6: IPv6 on the testbed veth pair, so that the client reaches [HOST6]:PORT.
add_veth6() {
	ip -n "$NAME" addr replace "$HOST6/64" dev tbhost0 nodad
	ip -n "$CNAME" addr replace "$CLIENT6/64" dev tbcli0 nodad
	ip -n "$CNAME" -6 route replace default via "$HOST6"
}

# make_shape NAME: creates one shape.
make_shape() {
	local hip
	hip=$(host_ip)
	case $1 in
	p2) run p2 -p 18080:80 -p 18081:80 "${HTTPD_ARGS[@]}" ;;
	haddr) run haddr -p "$hip:8800:80" -p 127.0.0.1:8800:80 "${HTTPD_ARGS[@]}" ;;
	range)
		run range -p 7100-7102:7100-7102 bb:local /bin/sh -c \
			'for p in 7100 7101 7102; do /bin/busybox httpd -p $p -h /www; done; exec /bin/busybox sleep 1000000'
		;;
	urange) run urange -p 7200-7201:7200-7201/udp "${SLEEP_ARGS[@]}" ;;
	udp) run udp -p 5353:53/udp "${SLEEP_ARGS[@]}" ;;
	tu) run tu -p 8300:80 -p 8300:80/udp "${HTTPD_ARGS[@]}" ;;
	lo) run lo -p 127.0.0.1:9300:80 "${HTTPD_ARGS[@]}" ;;
	lo6) run lo6 -p "[::1]:9301:80" "${HTTPD_ARGS[@]}" ;;
	hostip) run hostip -p "$hip:9302:80" "${HTTPD_ARGS[@]}" ;;
	random) run random -p 80 "${HTTPD_ARGS[@]}" ;;
	rrange) run rrange -p 9310-9319:80 "${HTTPD_ARGS[@]}" ;;
	multi)
		net shnet
		run multi -p 8400:80 "${HTTPD_ARGS[@]}"
		dk inspect -f '{{json .NetworkSettings.Networks}}' multi | grep -q '"shnet"' || dk network connect shnet multi
		;;
	hostmode) run hostmode --network host "${SLEEP_ARGS[@]}" ;;
	nonemode) run nonemode --network none "${SLEEP_ARGS[@]}" ;;
	ctrmode) run ctrmode --network container:p2 "${SLEEP_ARGS[@]}" ;;
	stopped)
		run stopped -p 8500:80 "${HTTPD_ARGS[@]}"
		[[ $(dk inspect -f '{{.State.Running}}' stopped) == false ]] || dk stop -t 1 stopped >/dev/null
		;;
	paused)
		run paused -p 8501:80 "${HTTPD_ARGS[@]}"
		[[ $(dk inspect -f '{{.State.Paused}}' paused) == true ]] || dk pause paused >/dev/null
		;;
	created) dk container inspect created >/dev/null 2>&1 || dk create --name created -p 8502:80 "${HTTPD_ARGS[@]}" >/dev/null ;;
	internal)
		net shint --internal
		run internal --network shint "${HTTPD_ARGS[@]}"
		;;
	noicc)
		net shnoicc -o com.docker.network.bridge.enable_icc=false
		run noicc --network shnoicc -p 8600:80 "${HTTPD_ARGS[@]}"
		run noicc2 --network shnoicc "${SLEEP_ARGS[@]}"
		;;
	nomasq)
		net shnomasq -o com.docker.network.bridge.enable_ip_masquerade=false
		run nomasq --network shnomasq -p 8601:80 "${HTTPD_ARGS[@]}"
		;;
	custom)
		net shcustom -o com.docker.network.bridge.name=shbr0 -o com.docker.network.driver.mtu=1400
		run custom --network shcustom -p 8602:80 "${HTTPD_ARGS[@]}"
		;;
	snat)
		net shsnat -o "com.docker.network.host_ipv4=$hip"
		run snat --network shsnat -p 8603:80 "${HTTPD_ARGS[@]}"
		;;
	v6)
		net shv6 --ipv6 --subnet fd00:db8:5::/64
		if [[ $BACKEND == legacy ]]; then
			run v6 --network shv6 -p 8700:80 "${HTTPD_ARGS[@]}"
		else
			run v6 --network shv6 -p 8700:80 -p 8701:80 "${HTTPD_ARGS[@]}"
		fi
		;;
	v6only)
		net shv6only --ipv6 --ipv4=false --subnet fd00:db8:6::/64
		if [[ $BACKEND == legacy ]]; then
			run v6only --network shv6only "${HTTPD_ARGS[@]}"
		else
			run v6only --network shv6only -p 8702:80 "${HTTPD_ARGS[@]}"
		fi
		;;
	routedign)
		net shrouted -o com.docker.network.bridge.gateway_mode_ipv4=routed
		run routedign --network shrouted -p 8900:80 "${HTTPD_ARGS[@]}"
		;;
	inticc)
		net shinticc --internal -o com.docker.network.bridge.enable_icc=false
		run inticc --network shinticc "${HTTPD_ARGS[@]}"
		run inticc2 --network shinticc "${SLEEP_ARGS[@]}"
		;;
	routed)
		net shrouted4 -o com.docker.network.bridge.gateway_mode_ipv4=routed
		run routed --network shrouted4 -p 8910:80 "${HTTPD_ARGS[@]}"
		;;
	unprot)
		net shunprot -o com.docker.network.bridge.gateway_mode_ipv4=nat-unprotected
		run unprot --network shunprot -p 8911:80 "${HTTPD_ARGS[@]}"
		;;
	trusted)
		net shtrusted -o com.docker.network.bridge.trusted_host_interfaces=tbhost0
		run trusted --network shtrusted -p 8912:80 "${HTTPD_ARGS[@]}"
		;;
	many)
		net shmany
		local i
		for ((i = 0; i < 12; i++)); do run "many$i" --network shmany -p "$((9400 + i)):80" "${HTTPD_ARGS[@]}"; done
		;;
	*) shapes_die "unknown shape '$1'" ;;
	esac
}

# checks_of SHAPES...: the probes of those shapes, "label where url" per line. where is
# client (from the client namespace to the host's address) or host (inside the host).
checks_of() {
	local hip s p
	hip=$(host_ip)
	for s in "$@"; do
		case $s in
		p2) echo "p2:18080 client http://$hip:18080/"; echo "p2:18081 client http://$hip:18081/" ;;
		haddr) echo "haddr:$hip:8800 client http://$hip:8800/"; echo "haddr:127.0.0.1:8800 host http://127.0.0.1:8800/" ;;
		range) for p in 7100 7101 7102; do echo "range:$p client http://$hip:$p/"; done ;;
		tu) echo "tu:8300 client http://$hip:8300/" ;;
		lo) echo "lo:9300 host http://127.0.0.1:9300/" ;;
		lo6)
			# Why not with the proxy off: Docker then maps no host IPv6 address to an
			# IPv4-only container ("Cannot map from IPv6 to an IPv4-only container because
			# the userland proxy is disabled", 28.5's log); nothing listens.
			# Why not on 29 after a restart (AFTER_RESTART=1): 29.8.1 drops the binding of
			# [::1] to an IPv4-only container when it restores the container on a
			# live-restore restart (inspect then shows "80/tcp": null and no docker-proxy
			# runs; seen on real 29.8.1, nft, proxy on). A Docker bug iptscope cannot see:
			# the daemon no longer reports the binding.
			if [[ $PROXY == off ]] || { (($(major_of) >= 29)) && [[ ${AFTER_RESTART:-0} == 1 ]]; }; then
				:
			else
				echo "lo6:9301 host http://[::1]:9301/"
			fi
			;;
		hostip) echo "hostip:9302 client http://$hip:9302/" ;;
		random)
			p=$(dk port random 80/tcp | sed -n 's/^0\.0\.0\.0://p' | head -1)
			echo "random:$p client http://$hip:$p/"
			;;
		rrange)
			p=$(dk port rrange 80/tcp | sed -n 's/^0\.0\.0\.0://p' | head -1)
			echo "rrange:$p client http://$hip:$p/"
			;;
		multi) echo "multi:8400 client http://$hip:8400/" ;;
		noicc) echo "noicc:8600 client http://$hip:8600/" ;;
		nomasq) echo "nomasq:8601 client http://$hip:8601/" ;;
		custom) echo "custom:8602 client http://$hip:8602/" ;;
		snat) echo "snat:8603 client http://$hip:8603/" ;;
		v6)
			echo "v6:8700 client http://$hip:8700/"
			echo "v6:[::]:8700 client http://[$HOST6]:8700/"
			if [[ $BACKEND != legacy ]]; then
				echo "v6:8701 client http://$hip:8701/"
				echo "v6:[::]:8701 client http://[$HOST6]:8701/"
			fi
			;;
		v6only) [[ $BACKEND == legacy ]] || echo "v6only:[::]:8702 client http://[$HOST6]:8702/" ;;
		routedign) echo "routedign:8900 client http://$hip:8900/" ;;
		routed) [[ $PROXY == off ]] || echo "routed:[::]:8910 client http://[$HOST6]:8910/" ;;
		unprot) echo "unprot:8911 client http://$hip:8911/" ;;
		trusted) echo "trusted:8912 client http://$hip:8912/" ;;
		many) for ((p = 9400; p < 9412; p++)); do echo "many:$p client http://$hip:$p/"; done ;;
		esac
	done
}

# probe_checks SHAPES...: runs the probes concurrently, prints "label answered=yes|no from=W
# url=U"; returns 1 if one did not answer.
probe_checks() {
	local tmp i rc=0 line
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/shapes-probe.XXXXXX")
	local -a checks pids=()
	mapfile -t checks < <(checks_of "$@")
	for i in "${!checks[@]}"; do
		(
			read -r label from url <<<"${checks[$i]}"
			runner=in_client
			[[ $from == host ]] && runner=in_host
			if $runner timeout 5 curl -g -fsS -o /dev/null --connect-timeout 2 --max-time 3 "$url" 2>/dev/null; then
				ans=yes
			else
				ans=no
			fi
			echo "$label answered=$ans from=$from url=$url" >"$tmp/$i"
		) &
		pids+=($!)
	done
	for i in "${pids[@]}"; do wait "$i" || true; done
	for i in "${!checks[@]}"; do
		line=$(cat "$tmp/$i" 2>/dev/null || echo "${checks[$i]} probe-failed")
		echo "$line"
		[[ $line == *answered=yes* ]] || rc=1
	done
	rm -rf "$tmp"
	return $rc
}

# wait_probes SHAPES...: probes until every port answers (WAIT_SECS), or dies.
wait_probes() {
	local i
	for ((i = 0; i < WAIT_SECS; i++)); do
		if probe_checks "$@" >/dev/null 2>&1; then return 0; fi
		sleep 1
	done
	probe_checks "$@" >&2 || true
	shapes_die "$NAME: published ports did not all answer within ${WAIT_SECS}s"
}

all_shapes() { shapes_list | awk '{print $1}'; }

cmd_shapes_layout() {
	need_root
	set_host "$1"
	require_up
	add_veth6
	nft_v6_forwarding
	local s
	local -a all
	mapfile -t all < <(all_shapes)
	for s in "${all[@]}"; do make_shape "$s"; done
	wait_probes "${all[@]}"
	shapes_log "layout $NAME: ${#all[@]} shapes, every published TCP port answers"
}

cmd_shapes_probe() {
	need_root
	set_host "$1"
	require_up
	local -a all
	mapfile -t all < <(all_shapes)
	probe_checks "${all[@]}"
}

# case_shapes CASE: the shapes of one case of issue 10.
case_shapes() {
	case $1 in
	two-host-ports) echo p2 v6 ;;
	two-host-addrs) echo haddr ;;
	ipv6-only) (($(major_of) >= 28)) || shapes_die "ipv6-only needs Docker 28+"; echo v6only ;;
	routed-ignored) (($(major_of) < 27)) || shapes_die "routed-ignored needs Docker < 27"; echo routedign ;;
	gateway-modes) (($(major_of) >= 28)) || shapes_die "gateway-modes needs Docker 28+"; echo routed unprot trusted ;;
	all) all_shapes | tr '\n' ' ' ;;
	*) shapes_die "unknown case '$1'" ;;
	esac
}

# nft_v6_forwarding: Docker 29 with its nftables backend never turns IPv6 forwarding on and
# refuses to create an IPv6 network without it ("IPv6 global forwarding is disabled"); set it
# in the host's namespace, as an administrator of such a host must.
nft_v6_forwarding() {
	[[ ${FIREWALL:-iptables} == nftables ]] || return 0
	nsenter --net="$NETNS" sysctl -qw net.ipv6.conf.all.forwarding=1 net.ipv6.conf.default.forwarding=1
}

cmd_shapes_case() {
	need_root
	set_host "$1"
	require_up
	add_veth6
	nft_v6_forwarding
	local s
	local -a shapes
	read -r -a shapes <<<"$(case_shapes "$2")"
	for s in "${shapes[@]}"; do make_shape "$s"; done
	wait_probes "${shapes[@]}"
}

cmd_shapes_capture() {
	need_root
	set_host "$1"
	local c=${2:-} out=${3:-}
	[[ -n $c && -n $out ]] || shapes_die "capture: want NAME CASE OUTDIR"
	cmd_shapes_case "$1" "$c"
	mkdir -p "$out"
	out=$(readlink -f "$out")
	local -a shapes
	read -r -a shapes <<<"$(case_shapes "$c")"
	probe_checks "${shapes[@]}" >"$out/probe.txt"
	capture_bundle "$out"
	[[ -f $out/bundle.json ]] || shapes_die "capture: no bundle.json (see dockerhost.sh capture_bundle)"
	local sv
	sv=$(dk version --format '{{.Server.Version}}')
	echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) docker=$sv backend=$BACKEND ($(in_host iptables --version)) userland-proxy=$PROXY firewall=${FIREWALL:-iptables} state=healthy case=$c made by: DOCKER=$DOCKER BACKEND=$BACKEND PROXY=$PROXY FIREWALL=${FIREWALL:-iptables} e2e/testbed/shapes.sh capture $NAME $c $(basename "$(dirname "$out")")/$(basename "$out") (shapes.sh fixtures fixtures)" >"$out/PROVENANCE"
	shapes_log "capture $NAME: wrote $out"
}

# FIXTURES: the captures of fixtures/healthy-shapes-*, "CASE DOCKER BACKEND PROXY [FIREWALL]" per
# line (FIREWALL: Docker 29's firewall backend, default iptables).
FIXTURES=(
	"two-host-ports 20.10 nft on"
	"two-host-ports 26.1 nft on"
	"two-host-ports 28.5 nft on"
	"two-host-ports 28.5 nft off"
	"two-host-addrs 20.10 nft on"
	"two-host-addrs 28.5 nft on"
	"ipv6-only 28.5 nft on"
	"ipv6-only 28.5 nft off"
	"routed-ignored 20.10 nft on"
	"routed-ignored 26.1 nft on"
	"gateway-modes 28.5 nft on"
	"all 29 nft on nftables"
)

# cmd_shapes_fixtures FIXTURESDIR: one throw-away host per FIXTURES line (live-restore off,
# ip6tables on before 27 as in e2e/healthy_test.go), "capture" into
# FIXTURESDIR/healthy-shapes-CASE/docker-DOCKER-BACKEND-proxy-PROXY, "down". Why one level
# deeper than fixtures/docker-*: the goldens of cmd/iptscope cover fixtures/*/bundle.json.
cmd_shapes_fixtures() {
	need_root
	local root=${1:-} line c d b p fw dir host=hsfx
	[[ -n $root ]] || shapes_die "fixtures: missing FIXTURESDIR"
	for line in "${FIXTURES[@]}"; do
		read -r c d b p fw <<<"$line"
		fw=${fw:-iptables}
		dir=$root/healthy-shapes-$c/docker-$d-$b-proxy-$p
		if [[ $fw == nftables ]]; then dir=$root/healthy-shapes-$c/docker-$d-nftables-proxy-$p; fi
		if [[ -e $dir ]]; then
			shapes_log "fixtures: $dir exists, kept (delete it to capture it again)"
			continue
		fi
		local extra=""
		if [[ $d == 20.10 || $d == 26.1 ]]; then extra='"experimental": true, "ip6tables": true'; fi
		DOCKER=$d BACKEND=$b PROXY=$p FIREWALL=$fw DAEMON_EXTRA=$extra bash "$(dirname "$SHAPES_PATH")/dockerhost.sh" up "$host" >&2
		if ! DOCKER=$d BACKEND=$b PROXY=$p FIREWALL=$fw bash "$SHAPES_PATH" capture "$host" "$c" "$dir"; then
			bash "$(dirname "$SHAPES_PATH")/dockerhost.sh" down "$host" >&2 || true
			shapes_die "fixtures: capture of $line failed"
		fi
		bash "$(dirname "$SHAPES_PATH")/dockerhost.sh" down "$host" >&2
	done
}

shapes_main() {
	local cmd=${1:-}
	[[ -n $cmd ]] || { sed -n '2,/^# Env:/p' "$SHAPES_PATH" | sed 's/^# \{0,1\}//' >&2; exit 2; }
	shift
	case $cmd in
	layout) cmd_shapes_layout "$@" ;;
	list)
		set_host "${1:-}"
		require_up
		shapes_list
		;;
	probe) cmd_shapes_probe "$@" ;;
	case) cmd_shapes_case "$@" ;;
	capture) cmd_shapes_capture "$@" ;;
	fixtures) cmd_shapes_fixtures "$@" ;;
	*) shapes_die "unknown subcommand '$cmd'" ;;
	esac
}

shapes_main "$@"
