#!/usr/bin/env bash
# bench/instructions.sh: instructions per HTTP request, halo vs HAProxy, under
# callgrind on a fixed workload. Repeatable where req/s on this shared VM is not
# (DESIGN.md §5): use it to compare a code change, and bench/proxy.sh for speed.
#
# Setup: nginx (1 worker, `return 200`, two servers), HAProxy 2.6 (nbthread 1,
# mode http, roundrobin) and halo (one proxy thread) with the same config as
# bench/proxy.sh but without health checks (their instructions would be noise).
# Each proxy runs under valgrind --tool=callgrind. After WARM requests the
# counters are zeroed (callgrind_control -z), then N requests go through on C
# keep-alive connections (a Python http.client per connection), then the
# counters are dumped: instructions (Ir) / N is the figure, user space only
# (callgrind does not see the kernel, which is ~60% of the proxy's time).
#
# Usage: apt-get install -y haproxy nginx-light valgrind python3   (as root)
#        cargo build --release
#        bench/instructions.sh            # N=20000 C=10 WARM=2000
#        KEEP=1 bench/instructions.sh     # keeps the callgrind files for callgrind_annotate
# Only 127.0.0.1 is used; only processes started here are stopped.
set -euo pipefail

N=${N:-20000}
C=${C:-10}
WARM=${WARM:-2000}
HALO=${HALO:-$(cd "$(dirname "$0")/.." && pwd)/target/release/halo}
WORK=$(mktemp -d /tmp/halo-instr.XXXXXX)
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

for tool in nginx haproxy valgrind callgrind_control python3 curl; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install -y haproxy nginx-light valgrind python3 curl" >&2; exit 2; }
done
[ -x "$HALO" ] || { echo "no halo binary at $HALO: run cargo build --release" >&2; exit 2; }

trap cleanup_callgrind EXIT

nginx_conf "$WORK/nginx" "
  server { listen 127.0.0.1:28281; location / { add_header X-Server s1; return 200 \"hello from s1\\n\"; } }
  server { listen 127.0.0.1:28282; location / { add_header X-Server s2; return 200 \"hello from s2\\n\"; } }"
nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" &
PIDS+=($!)

cat > "$WORK/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn 1000
defaults
  mode http
  option http-keep-alive
  timeout connect 5s
  timeout client 60s
  timeout server 30s
frontend fe
  bind 127.0.0.1:28280
  default_backend be
backend be
  balance roundrobin
  server s1 127.0.0.1:28281
  server s2 127.0.0.1:28282
EOF
cat > "$WORK/halo.toml" <<EOF
[[listener]]
name = "fe"
bind = ["127.0.0.1:28290"]
protocol = "http"
default_pool = "be"
access_log = false

[[pool]]
name = "be"
  [[pool.server]]
  name = "s1"
  address = "127.0.0.1:28281"
  [[pool.server]]
  name = "s2"
  address = "127.0.0.1:28282"
EOF
"$HALO" check -c "$WORK/halo.toml" >/dev/null

VG="valgrind --tool=callgrind --dump-instr=no --collect-atstart=yes"
$VG --callgrind-out-file="$WORK/haproxy.cg" haproxy -db -f "$WORK/haproxy.cfg" > "$WORK/haproxy.log" 2>&1 &
HAPROXY_PID=$!
PIDS+=($HAPROXY_PID)
RUST_LOG=warn $VG --callgrind-out-file="$WORK/halo.cg" "$HALO" run -c "$WORK/halo.toml" > "$WORK/halo.log" 2>&1 &
HALO_PID=$!
PIDS+=($HALO_PID)

wait_up http://127.0.0.1:28281/
wait_up http://127.0.0.1:28282/
wait_up http://127.0.0.1:28280/ 300
wait_up http://127.0.0.1:28290/ 300

load() {  # port requests: C keep-alive connections, requests split evenly
  python3 - "$1" "$2" "$C" <<'EOF'
import http.client, sys, threading
port, total, conns = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
errors = []
def run(n):
    c = http.client.HTTPConnection("127.0.0.1", port)
    for _ in range(n):
        c.request("GET", "/", headers={"Host": "bench.example"})
        r = c.getresponse()
        r.read()
        if r.status != 200:
            errors.append(r.status)
threads = [threading.Thread(target=run, args=(total // conns,)) for _ in range(conns)]
for t in threads: t.start()
for t in threads: t.join()
if errors:
    sys.exit(f"{len(errors)} non-200 answers")
EOF
}

measure() {  # name port pid
  load "$2" "$WARM"
  callgrind_control -z "$3" >/dev/null 2>&1
  load "$2" "$N"
  callgrind_control -d "$3" >/dev/null 2>&1
  # The dump (part 1) holds the instructions since the zeroing, every thread.
  local ir
  ir=$(awk '/^summary:/ {s += $2} END {print s + 0}' "$WORK/$1".cg.1)
  echo "$1 $ir"
}
{
  measure haproxy 28280 "$HAPROXY_PID"
  measure halo 28290 "$HALO_PID"
} > "$WORK/ir.txt"

REQS=$(( N / C * C ))
awk -v n="$REQS" '
  {ir[$1] = $2}
  END {
    printf "%-8s %14s %12s\n", "proxy", "instructions", "per request"
    printf "%-8s %14d %12.0f\n", "HAProxy", ir["haproxy"], ir["haproxy"] / n
    printf "%-8s %14d %12.0f\n", "halo", ir["halo"], ir["halo"] / n
    printf "halo / HAProxy instructions per request: %.3f  (%d requests each, user space only)\n", ir["halo"] / ir["haproxy"], n
  }' "$WORK/ir.txt"
