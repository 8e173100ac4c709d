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
# Then (as root) the whole-site outage: three sites in network namespaces,
# with and without cross-site probes (the section below says how).
#
# Usage: apt-get install -y gdnsd python3 iproute2  (as root); cargo build --release
#        bench/gslb-failover.sh    # TRIALS=7 HALO_INTERVALS="1s 250ms" SITE_TRIALS=7 STALE_TRIALS=3
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

# ---------------- whole-site outage: three sites in network namespaces ----------------
# Each site a namespace on one bridge: its halo node (DNS on 192.0.2.1N:53) and
# its app (python http.server on its entry address 192.0.2.2N:80, the VIP in
# production); watch.py asks from a client namespace. Service `app` =
# round-robin over the three entries; each node checks its own app (http,
# 200 ms, rise 1 fall 2) and, "with probes", probes the others' entries
# ([gslb.probe] http, 500 ms, timeout 250 ms, rise 1, fall 2). peer_interval
# 500 ms; peer_stale_after is the default (30 s). Cases, each timed until
# the surviving sites' nodes (west, north) stop answering east's entry:
#   app    SIGKILL east's app (its node withdraws it; the others follow)
#   crash  SIGKILL east's halo and app together (the host stays up: the
#          others get refusals at once)
#   link   east's link goes down (DNS node, entry and app gone at once; the
#          others' packets time out): a site losing power or its uplink
# Needs root (namespaces); SITE_TRIALS (7) per case with probes,
# STALE_TRIALS (3) for crash and link without (each waits peer_stale_after).
# The nodes log at SITE_LOG (default warn; info keeps every "GSLB verdict")
# to site<N>-<yes|no>.log in the work directory, which is kept.
SITE_TRIALS=${SITE_TRIALS:-7}
STALE_TRIALS=${STALE_TRIALS:-3}
ID=$$
BR=hgbbr$ID
CL=hgbc$ID
SITES=(east west north)
site_ns() { echo "hgb$1n$ID"; }
netns_cleanup() {
  for i in 1 2 3; do ip netns del "$(site_ns "$i")" 2>/dev/null || true; done
  ip netns del "$CL" 2>/dev/null || true
  ip netns del "$BR" 2>/dev/null || true
}
site_config() {  # index(1-3) probes(yes|no)
  local i=$1 name=${SITES[$(($1 - 1))]} peers="" endpoints="" j
  for j in 1 2 3; do
    endpoints+="    [[gslb.service.endpoint]]
    address = \"192.0.2.2$j\"
    site = \"${SITES[$((j - 1))]}\"
"
    if [ "$j" = "$i" ]; then
      endpoints+="    health = { pool = \"app\" }
"
    else
      peers+="${peers:+, }{ address = \"192.0.2.1$j:53\", site = \"${SITES[$((j - 1))]}\" }"
    fi
  done
  cat <<EOF
[node]
name = "$name-lb-1"
site = "$name"
threads = 1
[[pool]]
name = "app"
  [pool.check]
  type = "http"
  interval = "200ms"
  rise = 1
  fall = 2
  [[pool.server]]
  name = "app-0"
  address = "192.0.2.2$i:80"
[gslb]
zone = "example.test"
listen = ["192.0.2.1$i:53"]
sites = ["east", "west", "north"]
peers = [$peers]
peer_interval = "500ms"
EOF
  if [ "$2" = yes ]; then
    cat <<EOF
  [gslb.probe]
  type = "http"
  port = 80
  interval = "500ms"
  timeout = "250ms"
  rise = 1
  fall = 2
EOF
  fi
  cat <<EOF
  [[gslb.service]]
  name = "app"
  ttl = "1s"
$endpoints
EOF
}
declare -A SITE_APP SITE_HALO
site_app() {  # index
  ip netns exec "$(site_ns "$1")" python3 -m http.server --bind "192.0.2.2$1" 80 --directory "$WORK/www" >/dev/null 2>&1 &
  SITE_APP[$1]=$!; PIDS+=("${SITE_APP[$1]}")
}
site_halo() {  # index mode
  RUST_LOG=${SITE_LOG:-warn} ip netns exec "$(site_ns "$1")" "$HALO" run -c "$WORK/site$1-$2.toml" >> "$WORK/site$1-$2.log" 2>&1 &
  SITE_HALO[$1]=$!; PIDS+=("${SITE_HALO[$1]}")
}
swatch() { ip netns exec "$CL" python3 "$HERE/dns/watch.py" "$@"; }
ALLDNS=(192.0.2.11:53 192.0.2.12:53 192.0.2.13:53)
REST=(192.0.2.12:53 192.0.2.13:53)
# site_trials LABEL CASE N: N trials of CASE, then a summary line.
site_trials() {
  local label=$1 case=$2 n=$3 out worst back gone t
  : > "$WORK/$label.dat"
  for t in $(seq 1 "$n"); do
    out=$(swatch back 192.0.2.21 app.example.test 60 "${ALLDNS[@]}")
    if grep -q timeout <<<"$out"; then echo "$label: east never came back: $out" >&2; exit 1; fi
    # Anywhere in the probes' cycle.
    sleep "$(awk -v s="$RANDOM" 'BEGIN {srand(s); printf "%.3f", 0.5 + rand() * 0.5}')"
    case $case in
      app) out=$(swatch gone 192.0.2.21 app.example.test 60 "${REST[@]}" --kill "${SITE_APP[1]}") ;;
      crash) out=$(swatch gone 192.0.2.21 app.example.test 60 "${REST[@]}" --kill "${SITE_APP[1]}" --kill "${SITE_HALO[1]}") ;;
      link) out=$(swatch gone 192.0.2.21 app.example.test 60 "${REST[@]}" --cmd "ip -n $BR link set p1 down") ;;
    esac
    if grep -q timeout <<<"$out"; then echo "$label: east never left every answer: $out" >&2; exit 1; fi
    worst=$(awk '{print $2}' <<<"$out" | sort -g | tail -1)
    case $case in
      app) { wait "${SITE_APP[1]}"; } 2>/dev/null || true; site_app 1 ;;
      crash) { wait "${SITE_APP[1]}" "${SITE_HALO[1]}"; } 2>/dev/null || true; site_app 1; site_halo 1 "$MODE" ;;
      link) ip -n "$BR" link set p1 up ;;
    esac
    back=$(swatch back 192.0.2.21 app.example.test 60 "${ALLDNS[@]}" | awk '{print $2}' | sort -g | tail -1)
    echo "$worst $back" >> "$WORK/$label.dat"
    echo "$label trial $t: gone per surviving node [$(tr '\n' ' ' <<<"$out")] all gone ${worst}s; back on all ${back}s"
  done
  gone=$(awk '{print $1}' "$WORK/$label.dat" | sort -g)
  GONE_MEDIAN[$label]=$(median <<<"$gone")
  printf '%s: gone from the surviving sites (s): min %s median %s max %s (%s trials)\n' "$label" \
    "$(head -1 <<<"$gone")" "${GONE_MEDIAN[$label]}" "$(tail -1 <<<"$gone")" "$n" | tee -a "$WORK/summary.txt"
}
if [ "$(id -u)" -ne 0 ]; then
  echo
  echo "## whole-site outage: skipped (network namespaces need root)"
else
  trap 'stop_started; netns_cleanup' EXIT
  ip netns add "$BR"
  ip -n "$BR" link add br0 type bridge
  ip -n "$BR" link set br0 up
  host_ns() {  # ns port addr...
    local ns=$1 port=$2 a
    shift 2
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip -n "$BR" link add "$port" type veth peer name eth0 netns "$ns"
    ip -n "$BR" link set "$port" master br0
    ip -n "$BR" link set "$port" up
    for a in "$@"; do ip -n "$ns" addr add "$a" dev eth0; done
    ip -n "$ns" link set eth0 up
  }
  host_ns "$CL" pc 192.0.2.100/24
  for i in 1 2 3; do host_ns "$(site_ns "$i")" "p$i" "192.0.2.1$i/24" "192.0.2.2$i/24"; done
  echo ok > "$WORK/www/index.html"
  for i in 1 2 3; do site_app "$i"; done
  for MODE in yes no; do
    for i in 1 2 3; do
      site_config "$i" "$MODE" > "$WORK/site$i-$MODE.toml"
      "$HALO" check -c "$WORK/site$i-$MODE.toml" >/dev/null
      site_halo "$i" "$MODE"
    done
    if [ "$MODE" = yes ]; then
      echo
      echo "## three sites, with probes (500 ms, timeout 250 ms, rise 1, fall 2)"
      site_trials sites-probes-app app "$SITE_TRIALS"
      site_trials sites-probes-crash crash "$SITE_TRIALS"
      site_trials sites-probes-link link "$SITE_TRIALS"
    else
      echo
      echo "## three sites, without probes (peer_stale_after 30 s, the default)"
      site_trials sites-noprobes-app app "$SITE_TRIALS"
      site_trials sites-noprobes-crash crash "$STALE_TRIALS"
      site_trials sites-noprobes-link link "$STALE_TRIALS"
    fi
    for i in 1 2 3; do kill "${SITE_HALO[$i]}" 2>/dev/null || true; wait "${SITE_HALO[$i]}" 2>/dev/null || true; done
  done
fi

echo
echo "## summary (seconds from the failure until no (surviving) server answers the address)"
cat "$WORK/summary.txt"
for c in crash link; do
  [ -n "${GONE_MEDIAN[sites-probes-$c]:-}" ] || continue
  awk -v p="${GONE_MEDIAN[sites-probes-$c]}" -v n="${GONE_MEDIAN[sites-noprobes-$c]}" -v c="$c" \
    'BEGIN {printf "ratio whole site (%s) with/without probes, median time until gone: %.3f (lower is better)\n", c, p / n}'
done
for iv in $HALO_INTERVALS; do
  awk -v h="${GONE_MEDIAN[halo-$iv]}" -v g="${GONE_MEDIAN[gdnsd-${GIV}s]}" -v iv="$iv" \
    'BEGIN {printf "ratio halo(%s)/gdnsd median time until gone: %.3f (lower is better)\n", iv, h / g}'
done
