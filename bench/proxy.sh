#!/usr/bin/env bash
# bench/proxy.sh: halo's proxy tier against HAProxy, side by side in one run.
#
# Started from ../shared/research/proxy_baseline.sh and measured the same way:
#   nginx (1 worker, `return 200`, 2 servers + 1 backup on 127.0.0.1:28081-28083)
#   HAProxy 2.6 (nbthread 1, mode http, balance roundrobin, httpchk, 2 servers + backup)
#   halo    (the equivalent config: one worker thread when pinned to one core)
#   wrk -t1 -c50 --latency; wrk on CPU 0, nginx and the proxy on CPU 1 (PIN=1), so
#   the proxy's cost shows as the req/s it takes from the core it shares with nginx.
#
# Besides req/s and latency it prints each proxy's CPU time per request (utime +
# stime from /proc/PID/stat over the run, divided by the requests wrk counted):
# the efficiency figure DESIGN.md §5 asks for, and the least noisy one here.
#
# Parts: http (req/s, p50, p99, CPU/request), tcp (mode tcp, 16 MiB responses:
# MB/s and CPU/GB), idle (RSS per idle client connection with up to 10k
# connections, fewer when the descriptor limit cannot hold 10k for HAProxy).
#
# Usage: apt-get install -y haproxy nginx-light wrk    (as root; the script does not install)
#        cargo build --release
#        bench/proxy.sh                # RUNS=3 DUR=10s CONNS=50 IDLE=min(10000, fd limit) PIN=1
# Only 127.0.0.1 is used; only processes started here are stopped.
set -euo pipefail

RUNS=${RUNS:-3}
DUR=${DUR:-10s}
CONNS=${CONNS:-50}
PIN=${PIN:-1}
HALO=${HALO:-$(cd "$(dirname "$0")/.." && pwd)/target/release/halo}
WORK=$(mktemp -d /tmp/halo-bench.XXXXXX)
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

for tool in nginx haproxy wrk python3 taskset; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install -y haproxy nginx-light wrk" >&2; exit 2; }
done
[ -x "$HALO" ] || { echo "no halo binary at $HALO: run cargo build --release" >&2; exit 2; }

trap stop_started EXIT
if [ "$PIN" = 1 ]; then CLI="taskset -c 0"; SRV="taskset -c 1"; else CLI=""; SRV=""; fi
# 10k idle connections need descriptors in this shell, the proxies and python.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
FDS=$(ulimit -n)
# HAProxy reserves two descriptors per `maxconn`: size it to the limit we have
# (20000 on the machine BENCHMARKS.md was measured on, so 9900), and hold as
# many idle connections as both proxies can take.
HAPROXY_MAXCONN=$(( (FDS - 200) / 2 ))
MAX_IDLE=$(( HAPROXY_MAXCONN - 500 < 10000 ? HAPROXY_MAXCONN - 500 : 10000 ))
IDLE=${IDLE:-$MAX_IDLE}

# ---------------- nginx ----------------
mkdir -p "$WORK/nginx/www"
head -c $((16 * 1024 * 1024)) /dev/zero | tr '\0' 'x' > "$WORK/nginx/www/big"
nginx_conf "$WORK/nginx" "
  server { listen 127.0.0.1:28081; root $WORK/nginx/www; location = /big { } location / { add_header X-Server s1; return 200 \"hello from s1\\n\"; } }
  server { listen 127.0.0.1:28082; root $WORK/nginx/www; location = /big { } location / { add_header X-Server s2; return 200 \"hello from s2\\n\"; } }
  server { listen 127.0.0.1:28083; location / { add_header X-Server bk; return 200 \"hello from backup\\n\"; } }"
$SRV nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" &
PIDS+=($!)

# ---------------- HAProxy ----------------
cat > "$WORK/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn $HAPROXY_MAXCONN
defaults
  option http-keep-alive
  timeout connect 5s
  timeout client 60s
  timeout server 30s
  timeout check 2s
  retries 3
  option redispatch
frontend fe
  mode http
  bind 127.0.0.1:28080
  default_backend be
frontend fe_tcp
  mode tcp
  bind 127.0.0.1:28180
  default_backend be_tcp
backend be
  mode http
  balance roundrobin
  option httpchk GET /healthz
  http-check expect status 200
  default-server check inter 2s fastinter 500ms downinter 5s rise 2 fall 3
  server s1 127.0.0.1:28081
  server s2 127.0.0.1:28082
  server bk 127.0.0.1:28083 backup
backend be_tcp
  mode tcp
  balance roundrobin
  default-server check inter 2s rise 2 fall 3
  server s1 127.0.0.1:28081
  server s2 127.0.0.1:28082
EOF
haproxy -c -f "$WORK/haproxy.cfg" >/dev/null
$SRV haproxy -db -f "$WORK/haproxy.cfg" > "$WORK/haproxy.log" 2>&1 &
HAPROXY_PID=$!
PIDS+=($HAPROXY_PID)

# ---------------- halo (the same setup) ----------------
cat > "$WORK/halo.toml" <<EOF
[node]
name = "bench"

[[listener]]
name = "fe"
bind = ["127.0.0.1:28090"]
protocol = "http"
default_pool = "be"
access_log = false          # HAProxy above logs nothing either

[[listener]]
name = "fe_tcp"
bind = ["127.0.0.1:28190"]
protocol = "tcp"
default_pool = "be_tcp"
access_log = false

[[pool]]
name = "be"
timeouts = { request_header = "60s", client = "60s" }   # idle clients stay, as HAProxy's timeout client 60s
  [pool.check]
  type = "http"
  path = "/healthz"
  fast_interval = "500ms"
  down_interval = "5s"
  [[pool.server]]
  name = "s1"
  address = "127.0.0.1:28081"
  [[pool.server]]
  name = "s2"
  address = "127.0.0.1:28082"
  [[pool.server]]
  name = "bk"
  address = "127.0.0.1:28083"
  backup = true

[[pool]]
name = "be_tcp"
  [pool.check]
  type = "tcp"
  [[pool.server]]
  name = "s1"
  address = "127.0.0.1:28081"
  [[pool.server]]
  name = "s2"
  address = "127.0.0.1:28082"
EOF
"$HALO" check -c "$WORK/halo.toml" >/dev/null
RUST_LOG=warn $SRV "$HALO" run -c "$WORK/halo.toml" > "$WORK/halo.log" 2>&1 &
HALO_PID=$!
PIDS+=($HALO_PID)

wait_up http://127.0.0.1:28081/
wait_up http://127.0.0.1:28080/
wait_up http://127.0.0.1:28090/

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

echo "# date: $(date -u +%Y-%m-%dT%H:%MZ)  host: $(uname -nr)  cpus: $(nproc)  pin=$PIN runs=$RUNS dur=$DUR conns=$CONNS"
echo "# $(haproxy -v | head -1)"
echo "# $(nginx -v 2>&1)"
echo "# $("$HALO" --version)"

# One wrk run: prints "rps p50_ms p99_ms requests cpu_us_per_req".
run_wrk() {  # url pid|-
  local url=$1 pid=$2 before after out
  [ "$pid" != - ] && before=$(cpu_ticks "$pid")
  out=$($CLI wrk -t1 -c"$CONNS" -d"$DUR" --latency "$url")
  [ "$pid" != - ] && after=$(cpu_ticks "$pid")
  if echo "$out" | grep -qE 'Non-2xx|Socket errors'; then
    echo "errors in run against $url:" >&2; echo "$out" >&2
  fi
  local rps p50 p99 reqs
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1=="50%" {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  local cpu=-
  [ "$pid" != - ] && cpu=$(awk -v t=$((after - before)) -v r="$reqs" -v h="$TCK" 'BEGIN {printf "%.2f", t / h * 1e6 / r}')
  echo "$rps $(to_ms "$p50") $(to_ms "$p99") $reqs $cpu"
}
to_ms() {  # wrk latency (e.g. 812.00us, 1.23ms, 1.01s) -> ms
  awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'
}

# ---------------- HTTP ----------------
echo
echo "## http: wrk -t1 -c$CONNS -d$DUR, 14-byte responses (run: req/s p50ms p99ms requests cpu_us/req)"
: > "$WORK/http.txt"
for i in $(seq 1 "$RUNS"); do
  # Interleaved, so drift in the machine's load hits both alike.
  echo "direct  $(run_wrk http://127.0.0.1:28081/ -)" | tee -a "$WORK/http.txt"
  echo "haproxy $(run_wrk http://127.0.0.1:28080/ "$HAPROXY_PID")" | tee -a "$WORK/http.txt"
  echo "halo    $(run_wrk http://127.0.0.1:28090/ "$HALO_PID")" | tee -a "$WORK/http.txt"
done
col() { awk -v n="$1" -v c="$2" '$1==n {print $c}' "$WORK/http.txt" | median; }
printf '\n%-8s %10s %8s %8s %12s\n' path "req/s" "p50 ms" "p99 ms" "cpu us/req"
for n in direct haproxy halo; do
  printf '%-8s %10.0f %8.3f %8.3f %12s\n' "$n" "$(col $n 2)" "$(col $n 3)" "$(col $n 4)" "$(col $n 6)"
done
awk -v a="$(col halo 2)" -v b="$(col haproxy 2)" 'BEGIN {printf "ratio halo/haproxy req/s (median): %.3f\n", a / b}'
awk -v a="$(col halo 4)" -v b="$(col haproxy 4)" 'BEGIN {printf "ratio halo/haproxy p99 (median): %.3f\n", a / b}'
awk -v a="$(col halo 6)" -v b="$(col haproxy 6)" 'BEGIN {printf "ratio halo/haproxy cpu per request (median, lower is better): %.3f\n", a / b}'

# ---------------- TCP ----------------
echo
echo "## tcp: mode tcp, 16 MiB responses, wrk -t1 -c4 -d$DUR (run: MB/s cpu_ms/GB)"
: > "$WORK/tcp.txt"
run_big() {  # url pid
  local before after out reqs rate
  before=$(cpu_ticks "$2")
  out=$($CLI wrk -t1 -c4 -d"$DUR" "$1")
  after=$(cpu_ticks "$2")
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  rate=$(echo "$out" | awk '/Transfer\/sec/ {v=$2; if (v ~ /GB$/) v*=1024; else if (v ~ /KB$/) v/=1024; print v+0}')
  awk -v t=$((after - before)) -v h="$TCK" -v r="$reqs" -v m="$rate" 'BEGIN {printf "%.1f %.1f\n", m, (t / h * 1000) / (r * 16 / 1024)}'
}
for i in $(seq 1 "$RUNS"); do
  echo "haproxy $(run_big http://127.0.0.1:28180/big "$HAPROXY_PID")" | tee -a "$WORK/tcp.txt"
  echo "halo    $(run_big http://127.0.0.1:28190/big "$HALO_PID")" | tee -a "$WORK/tcp.txt"
done
tcol() { awk -v n="$1" -v c="$2" '$1==n {print $c}' "$WORK/tcp.txt" | median; }
awk -v a="$(tcol halo 2)" -v b="$(tcol haproxy 2)" 'BEGIN {printf "median MB/s: haproxy %.1f, halo %.1f; ratio halo/haproxy %.3f\n", b, a, a / b}'
awk -v a="$(tcol halo 3)" -v b="$(tcol haproxy 3)" 'BEGIN {printf "median cpu ms/GB: haproxy %.1f, halo %.1f; ratio halo/haproxy %.3f (lower is better)\n", b, a, a / b}'

# ---------------- idle connections ----------------
echo
echo "## idle: RSS growth with $IDLE idle client connections (HTTP listener, nothing sent)"
idle_hold() {  # port pid: opens $IDLE connections, signals when the proxy holds them
  python3 - "$1" "$IDLE" "$2" "$WORK/idle.$1" <<'PY'
import socket, sys, time
port, n, pid, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
socks = []
for _ in range(n):
    s = socket.socket()
    s.connect(("127.0.0.1", port))
    socks.append(s)
def established():
    # The proxy's accepted sockets: count its fds that are sockets.
    import os
    return sum(1 for f in os.listdir(f"/proc/{pid}/fd") if os.readlink(f"/proc/{pid}/fd/{f}").startswith("socket:"))
deadline = time.time() + 30
while established() < n and time.time() < deadline:
    time.sleep(0.1)
with open(out, "w") as f:
    f.write(str(established()))
# Hold them while the caller reads RSS.
open(out + ".ready", "w").close()
time.sleep(5)
PY
}
# Run python in the background to read RSS while the connections are open.
measure_idle() {  # name port pid
  local before; before=$(rss_kb "$3")
  rm -f "$WORK/idle.$2" "$WORK/idle.$2.ready"
  idle_hold "$2" "$3" &
  local py=$!
  for _ in $(seq 1 400); do [ -f "$WORK/idle.$2.ready" ] && break; sleep 0.1; done
  local during; during=$(rss_kb "$3")
  wait $py
  local held; held=$(cat "$WORK/idle.$2")
  awk -v n="$1" -v b="$before" -v d="$during" -v h="$held" 'BEGIN {printf "%-8s rss before %d KiB, with %d connections %d KiB: %.2f KiB per connection\n", n, b, h, d, (d - b) / h}'
}
measure_idle haproxy 28080 "$HAPROXY_PID" | tee "$WORK/idle.txt"
measure_idle halo 28090 "$HALO_PID" | tee -a "$WORK/idle.txt"
awk '{v[$1] = $(NF-3)} END {printf "ratio halo/haproxy RSS per idle connection: %.3f (lower is better)\n", v["halo"] / v["haproxy"]}' "$WORK/idle.txt"
