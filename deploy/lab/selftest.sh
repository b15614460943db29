#!/usr/bin/env bash
# selftest.sh: smoke test of the lab itself (not of the dataplane).
#
# 1. `lab up --nodes 3 --backend none`: each server answers on its own address
#    (whoami body, X-Served-By, /files/8m sha256 = `lab status --json` = the
#    known value), the hub floods, IPv6 is off, `up` is idempotent and refuses
#    other parameters; then `lab down` and nothing is left.
# 2. `lab up --nodes 2 --backend portable` with fake-dataplane.py as the
#    dataplane (copies frames eth0 <-> shoal0): the lab's dataplane path
#    (start, wait for shoal0, configure it, nginx behind it); then `lab down`
#    and nothing is left, the dataplane processes included.
#
# Refuses to run while another lab is up (namespaces are machine-wide).
# Every network wait is bounded (curl --max-time, timeout). Needs root.
set -euo pipefail

HERE="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)"
LAB="$HERE/lab"
RUN=/run/shoal-lab
readonly HERE LAB RUN
# The lab's deterministic files (AES-128-CTR keystream, see lab: make_files).
declare -A EXPECTED=(
	[1k]=257a3ec6036d75d0cd4589e15a81f419bab44d63bd2550e92328f4ee12a40adb
	[1m]=bacc6e8ce24dee77be4d2331f5ad5d4665907c8938a8a70978842f2cd236628c
	[8m]=70ba6f06b6108102be330a69428f7886db7df28556a1368211ed7db583a288f5
)
T0=$EPOCHREALTIME
TMP=""
LAB_UP=0

say() { printf 'selftest: %s\n' "$*"; }
fail() {
	printf 'selftest: FAIL: %s\n' "$*" >&2
	exit 1
}
cleanup() {
	local rc=$?
	if ((LAB_UP)); then
		say "cleaning up after failure: lab down"
		"$LAB" down || true
	fi
	[[ -n $TMP ]] && rm -rf -- "$TMP"
	((rc == 0)) || say "FAILED (rc $rc) after $(elapsed) s"
}
trap cleanup EXIT
elapsed() { awk -v a="$T0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

lab_namespaces() { ip netns list | awk '{print $1}' | grep -E '^shoal-(hub|client|srv[0-9]+)$' || true; }

# jget EXPR: evaluate a Python expression over d = `lab status --json`.
jget() {
	"$LAB" status --json | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"
}

# lab_pids: every PID in the lab's namespaces plus the recorded ones.
lab_pids() {
	local ns
	while read -r ns; do [[ -n $ns ]] && ip netns pids "$ns"; done < <(lab_namespaces)
	cat "$RUN"/srv*/*.pid 2>/dev/null || true
}

running() { # running PID: exists and is not a zombie (PID 1 here reaps lazily)
	local s
	s=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
	[[ -n $s && $s != Z && $s != X ]]
}

# check_server K: whoami body and header, and the 8m file, on K's own address.
check_server() {
	local k=$1 addr="198.18.0.$((10 + $1))" body hdr sum
	hdr=$("$LAB" client curl -sS --max-time 5 -o /dev/null -D - "http://$addr/whoami") ||
		fail "srv$k: curl http://$addr/whoami failed"
	body=$("$LAB" client curl -sS --max-time 5 "http://$addr/whoami" | od -An -c | tr -s ' ')
	[[ $body == " s r v $k \n" ]] || fail "srv$k: /whoami body is '$body', want 'srv$k\\n'"
	grep -qx "X-Served-By: srv$k"$'\r' <<<"$hdr" || fail "srv$k: no 'X-Served-By: srv$k' in: $hdr"
	grep -q '^HTTP/1.1 200 ' <<<"$hdr" || fail "srv$k: /whoami status is not 200: $hdr"
	sum=$("$LAB" client curl -sS --max-time 20 "http://$addr/files/8m" | sha256sum | cut -d' ' -f1)
	[[ $sum == "$STATUS_8M" ]] || fail "srv$k: /files/8m sha256 $sum != status $STATUS_8M"
	say "ok: srv$k on $addr: whoami 'srv$k', X-Served-By srv$k, 8m sha256 matches"
}

# assert_clean PID...: after `lab down` nothing of the lab is left.
assert_clean() {
	local pid left i
	[[ -z $(lab_namespaces) ]] || fail "namespaces left: $(lab_namespaces | tr '\n' ' ')"
	[[ ! -e $RUN ]] || fail "$RUN left"
	compgen -G '/var/run/dpdk/shoal-lab-*' >/dev/null && fail "DPDK prefixes left: $(echo /var/run/dpdk/shoal-lab-*)"
	for ((i = 0; i < 20; i++)); do
		left=""
		for pid in "$@"; do running "$pid" && left+="$pid($(cat "/proc/$pid/comm" 2>/dev/null)) "; done
		[[ -z $left ]] && break
		sleep 0.1
	done
	[[ -z $left ]] || fail "processes left: $left"
	say "ok: down left no namespace, no process ($# checked), no $RUN, no DPDK prefix"
}

# ------------------------------------------------------------------ checks
[[ $(id -u) -eq 0 ]] || fail "needs root"
[[ -z $(lab_namespaces) && ! -e $RUN ]] ||
	fail "a lab is already up (namespaces: $(lab_namespaces | tr '\n' ' ')); not touching it: 'lab down' first"
shellcheck_rc=skipped
if command -v shellcheck >/dev/null; then
	shellcheck "$LAB" "$HERE/selftest.sh" || fail "shellcheck"
	shellcheck_rc=clean
fi
say "shellcheck: $shellcheck_rc"

# ---- phase 1: infrastructure only
say "phase 1: lab up --nodes 3 --backend none"
LAB_UP=1
"$LAB" up --nodes 3 --backend none
[[ $(jget 'd["healthy"]') == True ]] || fail "status --json says not healthy: $("$LAB" status)"
[[ $(jget 'len(d["nodes"])') == 3 ]] || fail "status --json does not list 3 nodes"
STATUS_8M=$(jget 'd["files"]["8m"]["sha256"]')
for f in 1k 1m 8m; do
	s=$(jget "d['files']['$f']['sha256']")
	[[ $s == "${EXPECTED[$f]}" ]] || fail "/files/$f sha256 $s != the known ${EXPECTED[$f]} (not deterministic?)"
done
say "ok: status healthy, 3 nodes, file checksums are the known values"
for k in 1 2 3; do check_server "$k"; done

# The hub floods: srv2 sees the client's frames to srv1's MAC.
seen=$(
	"$LAB" exec srv2 timeout 5 tcpdump -l -nn -e -i eth0 -c 1 'ether dst 02:00:c6:12:00:0b and tcp' 2>/dev/null &
	sleep 1
	"$LAB" client curl -s --max-time 3 -o /dev/null http://198.18.0.11/whoami || true
	wait
)
[[ $seen == *"> 02:00:c6:12:00:0b"* ]] || fail "srv2 did not see a frame for srv1's MAC (hub not flooding?): '$seen'"
say "ok: the hub floods (srv2 sees frames to srv1's MAC)"

for ns in hub client srv1 srv2 srv3; do
	[[ -z $("$LAB" exec "$ns" ip -6 -o addr) ]] || fail "$ns has IPv6 addresses"
done
[[ $("$LAB" exec srv3 cat /proc/sys/net/ipv6/conf/all/disable_ipv6) == 1 ]] || fail "IPv6 not disabled in srv3"
[[ $("$LAB" client cat /sys/class/net/eth0/address) == 02:00:c6:12:00:02 ]] || fail "client MAC"
"$LAB" client ethtool -k eth0 | grep -qx 'tx-checksumming: off' || fail "client eth0 tx offload not off"
say "ok: no IPv6 anywhere, client MAC and offloads as specified"

before=$(cat "$RUN"/srv*/nginx.pid | tr '\n' ' ')
"$LAB" up --nodes 3 --backend none 2>/dev/null || fail "second identical 'up' failed"
[[ $(cat "$RUN"/srv*/nginx.pid | tr '\n' ' ') == "$before" ]] || fail "second 'up' restarted nginx"
if "$LAB" up --nodes 2 --backend none 2>/dev/null; then fail "'up --nodes 2' over a 3-node lab succeeded"; fi
say "ok: 'up' is idempotent and refuses other parameters"

cfg=$("$LAB" dataplane-config srv2 --nodes 3 --backend dpdk)
grep -qx 'local_member = "srv2"' <<<"$cfg" || fail "dataplane-config srv2: local_member"
grep -qx 'eal_args = \["--no-pci", "--file-prefix", "shoal-lab-srv2"\]' <<<"$cfg" || fail "dataplane-config srv2: eal_args"
grep -qx 'device = "net_tap0,iface=shoal0,mac=02:00:c6:12:00:0c"' <<<"$cfg" || fail "dataplane-config srv2: kernel device"
[[ $(grep -c '^\[\[cluster.members\]\]' <<<"$cfg") == 3 ]] || fail "dataplane-config srv2: members"
say "ok: dataplane-config renders per node"

pids=$(lab_pids | sort -u | tr '\n' ' ')
"$LAB" down
LAB_UP=0
# shellcheck disable=SC2086 # one PID per word
assert_clean $pids

# ---- phase 2: the dataplane path, with a frame-copying stand-in
say "phase 2: lab up --nodes 2 --backend portable (fake-dataplane.py as shoal-dataplane)"
TMP=$(mktemp -d /tmp/shoal-lab-selftest.XXXXXX)
ln -s "$HERE/fake-dataplane.py" "$TMP/shoal-dataplane"
LAB_UP=1
SHOAL_BIN_DIR=$TMP "$LAB" up --nodes 2 --backend portable
[[ $(jget 'd["healthy"]') == True ]] || fail "status --json says not healthy: $("$LAB" status)"
for k in 1 2; do
	[[ $(jget "d['nodes'][$((k - 1))]['dataplane']['alive']") == True ]] || fail "srv$k dataplane not alive"
	[[ $(jget "d['nodes'][$((k - 1))]['shoal0']['addresses']") == "['198.18.0.1$k/24', '198.18.0.100/32']" ]] ||
		fail "srv$k shoal0 addresses: $(jget "d['nodes'][$((k - 1))]['shoal0']")"
	[[ $(jget "d['nodes'][$((k - 1))]['shoal0']['mac']") == "02:00:c6:12:00:0$(printf %x $((10 + k)))" ]] ||
		fail "srv$k shoal0 MAC"
	[[ $(jget "d['nodes'][$((k - 1))]['eth0']['addresses']") == "[]" ]] || fail "srv$k eth0 has an address"
	[[ $("$LAB" exec "srv$k" sysctl -n net.ipv4.conf.shoal0.arp_ignore net.ipv4.conf.shoal0.arp_announce | tr '\n' ' ') == "1 2 " ]] ||
		fail "srv$k shoal0 arp sysctls"
	[[ $(jget "d['nodes'][$((k - 1))]['dataplane']['config']") == "$RUN/srv$k/dataplane.toml" ]] || fail "config path"
	grep -qx "local_member = \"srv$k\"" "$RUN/srv$k/dataplane.toml" || fail "srv$k local_member"
done
STATUS_8M=$(jget 'd["files"]["8m"]["sha256"]')
for k in 1 2; do check_server "$k"; done
pids=$(lab_pids | sort -u | tr '\n' ' ')
"$LAB" down
LAB_UP=0
# shellcheck disable=SC2086
assert_clean $pids

say "PASS in $(elapsed) s"
