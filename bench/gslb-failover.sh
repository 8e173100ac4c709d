#!/usr/bin/env bash
# bench/gslb-failover.sh: how fast does a dead site leave the DNS answers?
#
# Two halo nodes as two sites on loopback, peered k8gb-style:
#   site a: halo on 127.0.0.1:25361, its app on 127.0.0.11:28481
#   site b: halo on 127.0.0.1:25362, its app on 127.0.0.12:28481
# service `app` = failover [a, b]; each node checks its own app (tcp connect,
# rise 1 fall 1) and learns the other site's from its peer (localtargets-,
# NOTIFY on change, polled every peer_interval = 1 s).
# Each trial: wait until both nodes answer 127.0.0.11, wait a random part of
# a check interval (so the kill lands anywhere in the check cycle), SIGKILL
# the app of site a, and time until EACH node stops answering 127.0.0.11
# (bench/dns/watch.py asks both every 10 ms). Then restart the app and time
# until both answer 127.0.0.11 again.
# The same with gdnsd (one server: simplefo .11 primary, .12 secondary,
# tcp_connect monitor at its fastest: the smallest interval its checkconf
# accepts, down_thresh 1, up_thresh 1) for comparison. gdnsd has no peering,
# so its figure is the lower bound a gdnsd-per-site setup could reach.
#
# Usage: apt-get install -y gdnsd python3   (as root); cargo build --release
#        bench/gslb-failover.sh    # TRIALS=7 HALO_INTERVALS="1s 250ms"
# Only 127.0.0.0/8 is used; only processes started here are stopped.
set -euo pipefail

TRIALS=${TRIALS:-7}
HALO_INTERVALS=${HALO_INTERVALS:-1s 250ms}
BPORT=28481
HA=25361
HB=25362
GPORT=25363
HERE=$(cd "$(dirname "$0")" && pwd)
HALO=${HALO:-$HERE/../target/release/halo}
WORK=$(mktemp -d /tmp/halo-bench-failover.XXXXXX)
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
for tool in gdnsd python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install -y gdnsd python3" >&2; exit 2; }
done
[ -x "$HALO" ] || { echo "no halo binary at $HALO: run cargo build --release" >&2; exit 2; }
trap stop_started EXIT
mkdir -p "$WORK/www"

APP_A=""
start_app() {  # ip; sets LAST
  python3 -m http.server --bind "$1" "$BPORT" --directory "$WORK/www" >/dev/null 2>&1 &
  LAST=$!
  PIDS+=("$LAST")
}
start_app 127.0.0.11; APP_A=$LAST
start_app 127.0.0.12

watch() { python3 "$HERE/dns/watch.py" "$@"; }
seconds() {  # "1s" | "250ms" -> seconds
  case $1 in *ms) awk -v v="${1%ms}" 'BEGIN {print v / 1000}' ;; *s) echo "${1%s}" ;; esac
}

# Median time until gone from every server, per trials() label.
declare -A GONE_MEDIAN

# trials LABEL INTERVAL_S PORT...: prints one line per trial, then a summary.
trials() {
  local label=$1 interval=$2; shift 2
  local ports=("$@") out worst back gone backs
  : > "$WORK/$label.dat"
  for t in $(seq 1 "$TRIALS"); do
    # Every server answers with site a's address before the kill.
    out=$(watch back 127.0.0.11 app.example.test 30 "${ports[@]}")
    if grep -q timeout <<<"$out"; then echo "$label: site a never came back: $out" >&2; exit 1; fi
    sleep "$(awk -v m="$interval" -v s="$RANDOM" 'BEGIN {srand(s); printf "%.3f", rand() * m}')"
    out=$(watch gone 127.0.0.11 app.example.test 30 "${ports[@]}" --kill "$APP_A")
    wait "$APP_A" 2>/dev/null || true
    if grep -q timeout <<<"$out"; then echo "$label: site a never left every answer: $out" >&2; exit 1; fi
    worst=$(awk '{print $2}' <<<"$out" | sort -g | tail -1)
    start_app 127.0.0.11; APP_A=$LAST
    back=$(watch back 127.0.0.11 app.example.test 30 "${ports[@]}" | awk '{print $2}' | sort -g | tail -1)
    echo "$worst $back" >> "$WORK/$label.dat"
    echo "$label trial $t: gone per server [$(tr '\n' ' ' <<<"$out")] all gone ${worst}s; back on all ${back}s after restart"
  done
  gone=$(awk '{print $1}' "$WORK/$label.dat" | sort -g)
  backs=$(awk '{print $2}' "$WORK/$label.dat" | sort -g)
  GONE_MEDIAN[$label]=$(median <<<"$gone")
  printf '%s: gone from every server (s): min %s median %s max %s | back (s): median %s max %s\n' "$label" \
    "$(head -1 <<<"$gone")" "${GONE_MEDIAN[$label]}" "$(tail -1 <<<"$gone")" \
    "$(median <<<"$backs")" "$(tail -1 <<<"$backs")" | tee -a "$WORK/summary.txt"
}

echo "# date: $(date -u +%Y-%m-%dT%H:%MZ)  host: $(uname -nr)  cpus: $(nproc)  trials=$TRIALS"
echo "# $("$HALO" --version)  gdnsd $(gdnsd 2>&1 | sed -n 's/^gdnsd version //p' | head -1)"
: > "$WORK/summary.txt"

# ---------------- halo: two sites ----------------
node() {  # site port peer_port local_ip other_ip other_site interval
  cat <<EOF
[node]
name = "gslb-$1"
site = "$1"
threads = 1
[gslb]
zone = "example.test"
listen = ["127.0.0.1:$2"]
sites = ["a", "b"]
peers = ["127.0.0.1:$3"]
peer_interval = "1s"
  [[gslb.service]]
  name = "app"
  strategy = "failover"
  failover_order = ["a", "b"]
  ttl = "0s"
    [[gslb.service.endpoint]]
    address = "$4"
    health = { check = { type = "tcp", port = $BPORT, interval = "$7", rise = 1, fall = 1 } }
    [[gslb.service.endpoint]]
    address = "$5"
    site = "$6"
EOF
}
for iv in $HALO_INTERVALS; do
  node a $HA $HB 127.0.0.11 127.0.0.12 b "$iv" > "$WORK/a.toml"
  node b $HB $HA 127.0.0.12 127.0.0.11 a "$iv" > "$WORK/b.toml"
  "$HALO" check -c "$WORK/a.toml" >/dev/null
  "$HALO" check -c "$WORK/b.toml" >/dev/null
  RUST_LOG=warn "$HALO" run -c "$WORK/a.toml" > "$WORK/a-$iv.log" 2>&1 & NA=$!; PIDS+=("$NA")
  RUST_LOG=warn "$HALO" run -c "$WORK/b.toml" > "$WORK/b-$iv.log" 2>&1 & NB=$!; PIDS+=("$NB")
  echo
  echo "## halo, two nodes, check interval $iv (rise 1 fall 1), peer_interval 1s + NOTIFY"
  trials "halo-$iv" "$(seconds "$iv")" $HA $HB
  kill "$NA" "$NB"; wait "$NA" "$NB" 2>/dev/null || true
done

# ---------------- gdnsd: one server, fastest monitor ----------------
mkdir -p "$WORK/gdnsd/zones" "$WORK/gdnsd/run" "$WORK/gdnsd/state"
gdnsd_config() {  # interval
  cat > "$WORK/gdnsd/config" <<EOF
options => { listen => [ 127.0.0.1:$GPORT ], run_dir => $WORK/gdnsd/run, state_dir => $WORK/gdnsd/state, udp_threads => 1, tcp_threads => 1, min_ttl => 1 }
service_types => {
  tcp_be => { plugin => tcp_connect, port => $BPORT, interval => $1, timeout => 1, down_thresh => 1, up_thresh => 1, ok_thresh => 1 }
}
plugins => { simplefo => { app => { service_types => tcp_be, primary => 127.0.0.11, secondary => 127.0.0.12 } } }
EOF
}
cat > "$WORK/gdnsd/zones/example.test" <<'EOF'
$TTL 300
@    SOA ns1 hostmaster 1 7200 1800 259200 60
@    NS  ns1
ns1  A   127.0.0.1
app  1/1 DYNA simplefo!app
EOF
GIV=""
for iv in 1 2; do
  gdnsd_config "$iv"
  if gdnsd -c "$WORK/gdnsd" checkconf > "$WORK/gdnsd-checkconf-$iv.log" 2>&1; then GIV=$iv; break; fi
done
[ -n "$GIV" ] || { echo "gdnsd checkconf refused every interval:" >&2; cat "$WORK"/gdnsd-checkconf-*.log >&2; exit 1; }
gdnsd -c "$WORK/gdnsd" start > "$WORK/gdnsd.log" 2>&1 & GD=$!; PIDS+=("$GD")
echo
echo "## gdnsd, tcp_connect interval ${GIV}s (its smallest accepted), down_thresh 1, up_thresh 1"
trials "gdnsd-${GIV}s" "$GIV" $GPORT

echo
echo "## summary (seconds from SIGKILL of site a's app until no server answers its address)"
cat "$WORK/summary.txt"
for iv in $HALO_INTERVALS; do
  awk -v h="${GONE_MEDIAN[halo-$iv]}" -v g="${GONE_MEDIAN[gdnsd-${GIV}s]}" -v iv="$iv" \
    'BEGIN {printf "ratio halo(%s)/gdnsd median time until gone: %.3f (lower is better)\n", iv, h / g}'
done
