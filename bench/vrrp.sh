#!/usr/bin/env bash
# bench/vrrp.sh: VIP failover time, halo vs keepalived, side by side in one run.
#
# Two identical LANs of network namespaces (a bridge, node A 192.0.2.1 priority
# 150, node B 192.0.2.2 priority 100, VIP 192.0.2.100/24, VRID 51, VRRPv3
# unicast, no second GARP burst), one running keepalived and one running halo,
# as ../shared/research/keepalived_failover.sh sets up keepalived. Trials
# alternate between the two LANs so both see the same machine load.
#
# Per advert interval (ADVERT_INTS, default "1 0.1") and mode (MODES):
#   crash      SIGKILL A (keepalived: its VRRP child too): no priority 0, B waits
#              Master_Down_Interval.
#   graceful   SIGTERM A: priority 0, B waits its skew time.
#   linkdown   A's bridge port down (A loses carrier) until B holds the VIP,
#              then up again.
#   partition  A's port out of the bridge (A's link stays up: both become
#              master) until B holds the VIP, then back.
#   After linkdown and partition: the time from the heal until one node alone
#   holds the VIP, and until A (the higher priority) holds it again.
# The kill comes at a random phase of the advert interval after one of A's
# adverts, the same phase for both LANs in a trial. Time runs from the
# kill (or heal) until `ip addr` in B shows the VIP, polled every 10 ms (up to
# ~15 ms of overhead, the same for both). After each trial A comes back (its
# stale VIP removed, as after a reboot) and preempts.
# Then STEADY seconds (default 60) of steady state per interval, both LANs at
# once: how many times B took the VIP while A was up (dual-master episodes).
#
# Usage (root): bench/vrrp.sh   [TRIALS=5 ADVERT_INTS="1 0.1" MODES="crash graceful linkdown partition" STEADY=60]
# Needs keepalived, tcpdump, iproute2 and a release build of halo (built if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
export LC_ALL=C

TRIALS=${TRIALS:-5}
ADVERT_INTS=${ADVERT_INTS:-"1 0.1"}
MODES=${MODES:-"crash graceful linkdown partition"}
STEADY=${STEADY:-60}
OUT=${OUT:-$(mktemp -d /tmp/halo-bench-vrrp.XXXXXX)}
HALO=${HALO:-target/release/halo}
VIP=192.0.2.100
[ "$(id -u)" -eq 0 ] || { echo "bench/vrrp.sh needs root (namespaces)" >&2; exit 1; }
command -v keepalived >/dev/null || { echo "needs keepalived (apt-get install keepalived)" >&2; exit 1; }
[ -x "$HALO" ] || cargo build --release -q
S=$$
LANS="k h"          # k = keepalived, h = halo

ns() { echo "bv$1$2$S"; }    # ns LAN NODE(a|b|br)

cleanup() {
  for lan in $LANS; do
    for f in "$OUT"/$lan-*.vrrp.pid; do [ -f "$f" ] && kill -KILL "$(cat "$f")" 2>/dev/null; done
  done
  stop_started
  for lan in $LANS; do for n in a b br; do ip netns del "$(ns $lan $n)" 2>/dev/null; done; done
  true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

setup() {
  local lan=$1 br a b
  br=$(ns $lan br); a=$(ns $lan a); b=$(ns $lan b)
  ip netns add "$br"; ip netns add "$a"; ip netns add "$b"
  ip -n "$br" link add br0 type bridge
  ip -n "$br" link set br0 type bridge stp_state 0 forward_delay 0
  ip -n "$br" link set br0 up
  ip -n "$a" link add eth0 type veth peer name pa netns "$br"
  ip -n "$b" link add eth0 type veth peer name pb netns "$br"
  for p in pa pb; do ip -n "$br" link set $p master br0; ip -n "$br" link set $p up; done
  ip -n "$a" addr add 192.0.2.1/24 dev eth0; ip -n "$a" link set eth0 up; ip -n "$a" link set lo up
  ip -n "$b" addr add 192.0.2.2/24 dev eth0; ip -n "$b" link set eth0 up; ip -n "$b" link set lo up
}

# conf LAN NODE PRIO SRC PEER AI -> config file path
conf() {
  local lan=$1 node=$2 prio=$3 src=$4 peer=$5 ai=$6 f
  if [ "$lan" = k ]; then
    f=$OUT/k-$node-$ai.conf
    cat > "$f" <<EOF
global_defs {
    vrrp_garp_master_delay 0
}
vrrp_instance VI_1 {
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority $prio
    advert_int $ai
    version 3
    unicast_src_ip $src
    unicast_peer {
        $peer
    }
    virtual_ipaddress {
        $VIP/24 dev eth0
    }
}
EOF
  else
    f=$OUT/h-$node-$ai.toml
    local ms; ms=$(awk -v a="$ai" 'BEGIN{printf "%d", a*1000}')
    cat > "$f" <<EOF
[node]
name = "$node"
[[vip]]
name = "vi1"
interface = "eth0"
vrid = 51
priority = $prio
advert_interval = "${ms}ms"
addresses = ["$VIP/24"]
unicast_source = "$src"
unicast_peers = ["$peer"]
garp_delay = "0s"
EOF
  fi
  echo "$f"
}

# start LAN NODE AI: starts node's daemon; its pid in $OUT/LAN-NODE.pid
start() {
  local lan=$1 node=$2 ai=$3 prio src peer f pid
  if [ "$node" = a ]; then prio=150 src=192.0.2.1 peer=192.0.2.2; else prio=100 src=192.0.2.2 peer=192.0.2.1; fi
  f=$(conf "$lan" "$node" $prio $src $peer "$ai")
  if [ "$lan" = k ]; then
    rm -f "$OUT/$lan-$node".*.pid   # a crashed run's pid files stop the next start
    ip netns exec "$(ns $lan $node)" keepalived -n -l -D -R -P -f "$f" \
      -p "$OUT/$lan-$node.main.pid" -r "$OUT/$lan-$node.vrrp.pid" \
      -c "$OUT/$lan-$node.chk.pid" -b "$OUT/$lan-$node.bfd.pid" >>"$OUT/$lan-$node.log" 2>&1 &
  else
    ip netns exec "$(ns $lan $node)" "$HALO" run -c "$f" >>"$OUT/$lan-$node.log" 2>&1 &
  fi
  pid=$!
  PIDS+=("$pid")
  echo "$pid" > "$OUT/$lan-$node.pid"
}

# signal LAN NODE SIGNAL: sends it (keepalived's KILL: its VRRP child too).
signal() {
  local lan=$1 node=$2 sig=$3
  if [ "$lan" = k ] && [ "$sig" = KILL ] && [ -f "$OUT/$lan-$node.vrrp.pid" ]; then
    kill -KILL "$(cat "$OUT/$lan-$node.vrrp.pid")" 2>/dev/null || true
  fi
  kill -"$sig" "$(cat "$OUT/$lan-$node.pid")" 2>/dev/null || true
}
reap() { wait "$(cat "$OUT/$1-$2.pid")" 2>/dev/null || true; }   # reap LAN NODE
stop() { signal "$@"; reap "$1" "$2"; }

has_vip() { local o; o=$(ip -n "$1" -4 -o addr show dev eth0 2>/dev/null); [[ $o == *" $VIP/"* ]]; }
a_only() { has_vip "$(ns $1 a)" && ! has_vip "$(ns $1 b)"; }
one_holder() { local x=0; has_vip "$(ns $1 a)" && x=$((x+1)); has_vip "$(ns $1 b)" && x=$((x+1)); [ $x -eq 1 ]; }
b_has() { has_vip "$(ns $1 b)"; }
now() { echo "$EPOCHREALTIME"; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.3f", b-a}'; }
# wait_until SECONDS CMD...: polls every 10 ms; 1 on timeout
wait_until() {
  local end; end=$(awk -v n="$EPOCHREALTIME" -v t="$1" 'BEGIN{printf "%.6f", n+t}'); shift
  while ! "$@"; do
    [[ $(awk -v n="$EPOCHREALTIME" -v e="$end" 'BEGIN{print (n>e)}') == 1 ]] && return 1
    sleep 0.01
  done
}

trial() {   # trial LAN AI MODE I PHASE
  local lan=$1 ai=$2 mode=$3 i=$4 phase=$5 t0 r
  wait_until 30 a_only "$lan" || { echo "$lan: no steady state" >&2; return 1; }
  # Kill PHASE (0..1) of an interval after A's latest advert as B sees it,
  # the same PHASE for both LANs, so their times differ by implementation,
  # not by luck of the draw.
  last_advert "$lan" "$ai"
  sleep "$(awk -v a="$ai" -v p="$phase" 'BEGIN{printf "%.3f", a*p}')"
  t0=$(now)
  case $mode in
    # Not waited for: keepalived takes ~1 s to exit after its priority 0.
    crash) signal "$lan" a KILL ;;
    graceful) signal "$lan" a TERM ;;
    linkdown) ip -n "$(ns $lan br)" link set pa down ;;
    partition) ip -n "$(ns $lan br)" link set pa nomaster ;;
  esac
  if wait_until 30 b_has "$lan"; then r=$(since "$t0"); else r=timeout; fi
  printf '%s\t%s\t%s\t%s\t%s\n' "$lan" "$ai" "$mode" "$i" "$r" >> "$OUT/results.tsv"
  case $mode in
    crash|graceful)
      reap "$lan" a
      ip -n "$(ns $lan a)" addr del $VIP/24 dev eth0 2>/dev/null || true   # rebooted
      t0=$(now); start "$lan" a "$ai"
      if wait_until 30 a_only "$lan"; then r=$(since "$t0"); else r=timeout; fi
      printf '%s\t%s\t%s\t%s\t%s\n' "$lan" "$ai" "preempt-after-$mode" "$i" "$r" >> "$OUT/results.tsv" ;;
    linkdown|partition)
      sleep "$ai"
      t0=$(now)
      if [ "$mode" = linkdown ]; then ip -n "$(ns $lan br)" link set pa up
      else ip -n "$(ns $lan br)" link set pa master br0; fi
      if wait_until 30 one_holder "$lan"; then r=$(since "$t0"); else r=timeout; fi
      printf '%s\t%s\t%s\t%s\t%s\n' "$lan" "$ai" "$mode-heal-one-master" "$i" "$r" >> "$OUT/results.tsv"
      if wait_until 30 a_only "$lan"; then r=$(since "$t0"); else r=timeout; fi
      printf '%s\t%s\t%s\t%s\t%s\n' "$lan" "$ai" "$mode-heal-a-master" "$i" "$r" >> "$OUT/results.tsv" ;;
  esac
}

# last_advert LAN AI: returns just after B receives one of A's adverts (a
# tcpdump on B's port that exits at the first one; 3 intervals of settling
# first). Falls back to returning after the settling if none is seen.
last_advert() {
  sleep "$(awk -v a="$2" 'BEGIN{printf "%.3f", 3*a+1.0}')"
  timeout "$(awk -v a="$2" 'BEGIN{printf "%.3f", 2*a+0.5}')" \
    ip netns exec "$(ns $1 br)" tcpdump --immediate-mode -i pb -n -c 1 'ip proto 112 and src 192.0.2.1' >/dev/null 2>&1 || true
}

# steady LAN AI SECONDS: rising edges of "B holds the VIP" while A is master.
steady() {
  local lan=$1 secs=$3 end prev=0 n=0 cur
  end=$(awk -v n="$EPOCHREALTIME" -v t="$secs" 'BEGIN{printf "%.6f", n+t}')
  while [[ $(awk -v n="$EPOCHREALTIME" -v e="$end" 'BEGIN{print (n<e)}') == 1 ]]; do
    if b_has "$lan"; then cur=1; else cur=0; fi
    [ $cur -eq 1 ] && [ $prev -eq 0 ] && n=$((n+1))
    prev=$cur
    sleep 0.01
  done
  printf '%s\t%s\tsteady-dual-master-episodes\t%ss\t%s\n' "$lan" "$2" "$secs" "$n" >> "$OUT/results.tsv"
}

: > "$OUT/results.tsv"
for lan in $LANS; do setup $lan; done
echo "halo $($HALO --version | cut -d' ' -f2) vs $(keepalived -v 2>&1 | head -1); TRIALS=$TRIALS; out: $OUT" >&2
for ai in $ADVERT_INTS; do
  # B's bridge port sees every advert to and from B: protocol-level gaps.
  tds=()
  for lan in $LANS; do
    ip netns exec "$(ns $lan br)" tcpdump -i pb -n -U -s 96 -w "$OUT/$lan-$ai.pcap" 'ip proto 112' \
      >"$OUT/tcpdump-$lan-$ai.log" 2>&1 &
    PIDS+=("$!"); tds+=("$!")
  done
  for lan in $LANS; do
    ip -n "$(ns $lan a)" addr del $VIP/24 dev eth0 2>/dev/null || true
    ip -n "$(ns $lan b)" addr del $VIP/24 dev eth0 2>/dev/null || true
    start $lan a "$ai"; start $lan b "$ai"
  done
  for mode in $MODES; do
    for i in $(seq 1 "$TRIALS"); do
      phase=$(awk -v r="$RANDOM" 'BEGIN{printf "%.3f", r/32768}')
      for lan in $LANS; do trial $lan "$ai" "$mode" "$i" "$phase"; done
      echo "advert $ai $mode trial $i: $(grep -P "^.\t$ai\t$mode\t$i\t" "$OUT/results.tsv" | cut -f1,5 | tr '\t\n' '= ')" >&2
    done
  done
  if [ "$STEADY" -gt 0 ]; then
    for lan in $LANS; do wait_until 30 a_only $lan || true; done
    steady k "$ai" "$STEADY" & sk=$!
    steady h "$ai" "$STEADY"
    wait $sk
  fi
  for lan in $LANS; do stop $lan b TERM; stop $lan a TERM; done   # B first: no takeover counted
  sleep 0.2; kill -INT "${tds[@]}" 2>/dev/null || true; wait "${tds[@]}" 2>/dev/null || true
  for lan in $LANS; do python3 bench/vrrp/gaps.py "$lan	$ai" "$OUT/$lan-$ai.pcap" >> "$OUT/gaps.tsv"; done
done

# Summary: median (min..max) per interval and measure, and halo/keepalived.
python3 - "$OUT/results.tsv" <<'PY'
import sys, statistics as st
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
data = {}
for lan, ai, what, i, v in rows:
    data.setdefault((ai, what), {}).setdefault(lan, []).append(v)
print(f"{'advert':>6} {'measure':<30} {'keepalived med (min..max) s':>30} {'halo med (min..max) s':>26} {'halo/ka':>8}")
for (ai, what), by in data.items():
    if what.startswith("steady"):
        print(f"{ai:>6} {what:<30} {by.get('k', ['?'])[0]:>30} {by.get('h', ['?'])[0]:>26}")
        continue
    cells, meds = [], []
    for lan in ("k", "h"):
        vals = [float(x) for x in by.get(lan, []) if x != "timeout"]
        to = len(by.get(lan, [])) - len(vals)
        if vals:
            m = st.median(vals); meds.append(m)
            cells.append(f"{m:.3f} ({min(vals):.3f}..{max(vals):.3f})" + (f" {to} t/o" if to else ""))
        else:
            meds.append(None); cells.append("-")
    ratio = f"{meds[1]/meds[0]:.2f}" if None not in meds and meds[0] > 0 else "-"
    print(f"{ai:>6} {what:<30} {cells[0]:>30} {cells[1]:>26} {ratio:>8}")
PY
echo "protocol level (tcpdump on B's bridge port): A's last advert to B's first; n median min max (s)"
sort "$OUT/gaps.tsv" | sed 's/^k\t/keepalived\t/; s/^h\t/halo\t/' | column -t
