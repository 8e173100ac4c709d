#!/usr/bin/env bash
# bench/tls.sh: halo's TLS termination against HAProxy (Debian's, OpenSSL 3),
# side by side in one run, on the layout of bench/proxy.sh:
#   nginx (1 worker, `return 200`) on 127.0.0.1:28081 behind both;
#   HAProxy (nbthread 1, `bind ... ssl crt`, mode http) on 127.0.0.1:28443;
#   halo (an `https` listener, one thread) on 127.0.0.1:28453;
#   the same certificate for both: ECDSA P-256 (KEY=ec, default) or RSA 2048
#   (KEY=rsa), self-signed, made here with openssl.
#   wrk on CPU 0, nginx and the proxy on CPU 1 (PIN=1).
#
# Two loads, interleaved run by run:
#   handshakes: wrk -H "Connection: close": every request opens a new TLS
#     connection with a full handshake (wrk does not resume sessions), so
#     requests/s = new handshakes/s (TLS 1.3, what wrk's OpenSSL negotiates);
#   keep-alive: plain wrk over kept-alive HTTPS connections: requests/s.
# For each, besides the rate, each proxy's CPU time per request (utime +
# stime from /proc/PID/stat over the run, divided by the requests wrk
# counted): on 2 cores wrk's own handshake work can be the limit, and then the
# rates read alike while the CPU per handshake still tells the servers apart.
#
# QUOTA=N (percent of one core, root, cgroup v1 cpu controller) caps each
# proxy at N % of a core, the same budget for both: then wrk, with a whole
# core, is not the limit and the rates compare the servers' capacity.
#
# UPSTREAM=tls re-encrypts (OpenShift's "reencrypt" route): nginx also
# serves the same answer over TLS on 127.0.0.1:28082 and both proxies reach
# it over TLS, kept alive (HAProxy `server ... ssl verify none`, halo
# `[pool.tls] verify = false`). UPSTREAM=plain (default) is termination only.
#
# Usage: apt-get install -y haproxy nginx-light wrk openssl   (as root)
#        cargo build --release
#        bench/tls.sh                 # RUNS=3 DUR=10s CONNS=50 PIN=1 KEY=ec QUOTA= UPSTREAM=plain
# Only 127.0.0.1 is used; only processes started here are stopped.
set -euo pipefail

RUNS=${RUNS:-3}
DUR=${DUR:-10s}
CONNS=${CONNS:-50}
PIN=${PIN:-1}
KEY=${KEY:-ec}
UPSTREAM=${UPSTREAM:-plain}
HALO=${HALO:-$(cd "$(dirname "$0")/.." && pwd)/target/release/halo}
WORK=$(mktemp -d /tmp/halo-bench-tls.XXXXXX)
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

for tool in nginx haproxy wrk openssl taskset curl; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install -y haproxy nginx-light wrk openssl" >&2; exit 2; }
done
[ -x "$HALO" ] || { echo "no halo binary at $HALO: run cargo build --release" >&2; exit 2; }

trap cleanup EXIT
if [ "$PIN" = 1 ]; then CLI="taskset -c 0"; SRV="taskset -c 1"; else CLI=""; SRV=""; fi

# ---------------- the certificate ----------------
case "$KEY" in
  ec) NEWKEY=(-newkey ec -pkeyopt ec_paramgen_curve:P-256) ;;
  rsa) NEWKEY=(-newkey rsa:2048) ;;
  *) echo "KEY=ec or KEY=rsa" >&2; exit 2 ;;
esac
openssl req -x509 "${NEWKEY[@]}" -nodes -keyout "$WORK/site.key" -out "$WORK/site.pem" \
  -subj "/CN=bench.example.test" -days 2 -addext "subjectAltName=DNS:bench.example.test" 2>/dev/null
cat "$WORK/site.pem" "$WORK/site.key" > "$WORK/haproxy.pem"

# ---------------- nginx ----------------
nginx_conf "$WORK/nginx" "
  server { listen 127.0.0.1:28081; location / { return 200 \"hello from s1\\n\"; } }
  server { listen 127.0.0.1:28082 ssl; ssl_certificate $WORK/site.pem; ssl_certificate_key $WORK/site.key;
           location / { return 200 \"hello from s1\\n\"; } }"
case "$UPSTREAM" in
  plain) SERVER_PORT=28081; HAPROXY_SSL=""; HALO_TLS="" ;;
  tls) SERVER_PORT=28082; HAPROXY_SSL=" ssl verify none"
       HALO_TLS=$'  [pool.tls]\n  verify = false' ;;
  *) echo "UPSTREAM=plain or UPSTREAM=tls" >&2; exit 2 ;;
esac
$SRV nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" &
PIDS+=($!)

# ---------------- HAProxy ----------------
cat > "$WORK/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn 4000
  tune.ssl.default-dh-param 2048
defaults
  mode http
  option http-keep-alive
  timeout connect 5s
  timeout client 60s
  timeout server 30s
frontend fe
  bind 127.0.0.1:28443 ssl crt $WORK/haproxy.pem alpn h2,http/1.1
  default_backend be
backend be
  server s1 127.0.0.1:$SERVER_PORT$HAPROXY_SSL
EOF
haproxy -c -f "$WORK/haproxy.cfg" >/dev/null
$SRV haproxy -db -f "$WORK/haproxy.cfg" > "$WORK/haproxy.log" 2>&1 &
HAPROXY_PID=$!
PIDS+=($HAPROXY_PID)
cap "$HAPROXY_PID" haproxy

# ---------------- halo (the same setup) ----------------
cat > "$WORK/halo.toml" <<EOF
[node]
name = "bench"

[[listener]]
name = "fe"
bind = ["127.0.0.1:28453"]
protocol = "https"
default_pool = "be"
access_log = false          # HAProxy above logs nothing either
  [[listener.certificate]]
  cert = "site.pem"
  key = "site.key"

[[pool]]
name = "be"
timeouts = { request_header = "60s", client = "60s" }
  [[pool.server]]
  name = "s1"
  address = "127.0.0.1:$SERVER_PORT"
$HALO_TLS
EOF
"$HALO" check -c "$WORK/halo.toml" >/dev/null
RUST_LOG=warn $SRV "$HALO" run -c "$WORK/halo.toml" > "$WORK/halo.log" 2>&1 &
HALO_PID=$!
PIDS+=($HALO_PID)
cap "$HALO_PID" halo

wait_up http://127.0.0.1:28081/
for port in 28443 28453; do
  up=0
  for _ in $(seq 1 100); do
    curl -kfs -o /dev/null "https://127.0.0.1:$port/" && { up=1; break; }
    sleep 0.1
  done
  [ "$up" = 1 ] || { echo "not answering: https://127.0.0.1:$port/" >&2; cat "$WORK"/*.log >&2; exit 1; }
done

echo "# date: $(date -u +%Y-%m-%dT%H:%MZ)  host: $(uname -nr)  cpus: $(nproc)  pin=$PIN runs=$RUNS dur=$DUR conns=$CONNS key=$KEY quota=${QUOTA:-none} upstream=$UPSTREAM"
echo "# $(haproxy -vv | grep -m1 -E '^HAProxy version')"
echo "# HAProxy $(haproxy -vv | grep -m1 'Running on OpenSSL')"
echo "# $(openssl version)"
echo "# $("$HALO" --version) (rustls, aws-lc-rs)"
for port in 28443 28453; do
  echo "# :$port negotiates $(echo | openssl s_client -connect 127.0.0.1:$port 2>/dev/null | awk '/^New, /{print $2, $5}' | tr -d ,)"
done

# One wrk run: prints "rps requests cpu_us_per_req".
run_wrk() {  # url pid [wrk args...]
  local url=$1 pid=$2 before after out
  shift 2
  before=$(cpu_ticks "$pid")
  out=$($CLI wrk -t1 -c"$CONNS" -d"$DUR" "$@" "$url")
  after=$(cpu_ticks "$pid")
  if echo "$out" | grep -qE 'Non-2xx|Socket errors'; then
    echo "errors in run against $url:" >&2; echo "$out" | grep -E 'Non-2xx|Socket errors' >&2
  fi
  local rps reqs
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  awk -v r="$rps" -v n="$reqs" -v t=$((after - before)) -v h="$TCK" 'BEGIN {printf "%s %s %.1f\n", r, n, t / h * 1e6 / n}'
}

report() {  # file what
  local f=$1 what=$2
  col() { awk -v n="$1" -v c="$2" '$1==n {print $c}' "$f" | median; }
  printf '%-8s %12s %14s\n' proxy "$what/s" "cpu us/$what"
  for n in haproxy halo; do
    printf '%-8s %12.0f %14.1f\n' "$n" "$(col $n 2)" "$(col $n 4)"
  done
  awk -v a="$(col halo 2)" -v b="$(col haproxy 2)" -v w="$what" 'BEGIN {printf "ratio halo/haproxy %s/s (median): %.3f\n", w, a / b}'
  awk -v a="$(col halo 4)" -v b="$(col haproxy 4)" -v w="$what" 'BEGIN {printf "ratio halo/haproxy cpu per %s (median, lower is better): %.3f; per core: %.3f\n", w, a / b, b / a}'
}

echo
echo "## handshakes: wrk -t1 -c$CONNS -d$DUR -H 'Connection: close' (a new TLS connection per request) (run: handshakes/s requests cpu_us/handshake)"
: > "$WORK/hs.txt"
for i in $(seq 1 "$RUNS"); do
  echo "haproxy $(run_wrk https://127.0.0.1:28443/ "$HAPROXY_PID" -H 'Connection: close')" | tee -a "$WORK/hs.txt"
  echo "halo    $(run_wrk https://127.0.0.1:28453/ "$HALO_PID" -H 'Connection: close')" | tee -a "$WORK/hs.txt"
done
echo
report "$WORK/hs.txt" handshake

echo
echo "## keep-alive: wrk -t1 -c$CONNS -d$DUR over kept-alive HTTPS connections (run: req/s requests cpu_us/req)"
: > "$WORK/ka.txt"
for i in $(seq 1 "$RUNS"); do
  echo "haproxy $(run_wrk https://127.0.0.1:28443/ "$HAPROXY_PID")" | tee -a "$WORK/ka.txt"
  echo "halo    $(run_wrk https://127.0.0.1:28453/ "$HALO_PID")" | tee -a "$WORK/ka.txt"
done
echo
report "$WORK/ka.txt" req
