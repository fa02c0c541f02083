#!/bin/bash
# gen.sh regenerates the real `iptables -L` samples in this directory.
#
# It loads rules.v4.in / rules.v6.in (Docker-like rules, with made-up
# counters added so that -L prints K/M/G suffixes) into throwaway network
# namespaces with both iptables-legacy and iptables-nft, then saves, per
# backend and family, the iptables-save output next to three -L forms:
#
#   *.save.txt        iptables-save
#   *.L-nv.txt        -t T -L -n -v for raw, mangle, nat, filter, with the
#                     command lines pasted in between ("# iptables -t nat -L -n -v")
#   *.L-nvx-num.txt   -t T -L -n -v -x --line-numbers, without command lines
#                     (the parser must infer the tables)
#   *.L-n.txt         -t T -L -n (no -v), with "$ sudo ..." prompts
#
# Needs root, ip, ipset and iptables 1.8 with both backends. Never touches
# the root namespace: every iptables call runs under `ip netns exec`.
set -euo pipefail
cd "$(dirname "$0")"

counters() {
	# Deterministic counters of every magnitude: 0, small, K, M, G.
	awk 'BEGIN { n = 0 }
	/^-A / { n++; split("0:0 7:420 1234:99000 123456:98765432 1500000:2200000000 99999:100000 42:3360", c, " ");
		printf "[%s] %s\n", c[(n % 7) + 1], $0; next }
	/^:/ { if ($2 != "-") { sub(/\[0:0\]/, "[12345678:9876543210]") } print; next }
	{ print }'
}

NSES=()
cleanup() { for ns in "${NSES[@]}"; do ip netns del "$ns" 2>/dev/null || true; done; }
trap cleanup EXIT

for backend in legacy nft; do
	for fam in v4 v6; do
		ns="iptscope-l-$$-$backend-$fam"
		NSES+=("$ns")
		ip netns add "$ns"
		if [ "$fam" = v4 ]; then
			cmd=iptables
			ip netns exec "$ns" ipset create docker-ext-bridges-v4 hash:net family inet
		else
			cmd=ip6tables
		fi
		bin="$cmd-$backend"
		counters <"rules.$fam.in" >"/tmp/iptscope-rules-$$"
		ip netns exec "$ns" "$bin-restore" -c "/tmp/iptscope-rules-$$"
		rm -f "/tmp/iptscope-rules-$$"
		base="$backend-$fam"
		ip netns exec "$ns" "$bin-save" | grep -v '^# \(Generated\|Completed\)' >"$base.save.txt"
		tables="raw mangle nat filter"
		[ "$fam" = v6 ] && tables="raw nat filter"
		: >"$base.L-nv.txt"; : >"$base.L-nvx-num.txt"; : >"$base.L-n.txt"
		for t in $tables; do
			echo "# $cmd -t $t -L -n -v" >>"$base.L-nv.txt"
			ip netns exec "$ns" "$bin" -t "$t" -L -n -v >>"$base.L-nv.txt"
			echo >>"$base.L-nv.txt"
			ip netns exec "$ns" "$bin" -t "$t" -L -n -v -x --line-numbers >>"$base.L-nvx-num.txt"
			echo >>"$base.L-nvx-num.txt"
			echo "\$ sudo $cmd -t $t -L -n" >>"$base.L-n.txt"
			ip netns exec "$ns" "$bin" -t "$t" -L -n >>"$base.L-n.txt"
		done
	done
done
