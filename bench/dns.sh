#!/usr/bin/env bash
# bench/dns.sh: halo's DNS tier against gdnsd, side by side in one run.
#
# Started from ../shared/research/dns_baseline.sh and measured the same way:
# gdnsd and halo serve the zone of bench/dns/servers.sh (names plain, fo, mfo);
#   dnsperf   -c CLIENTS -T 1 -l DUR, one name per pass
# With PIN=1 (default) each server has one worker (gdnsd udp_threads 1, halo
# node.threads 1) pinned to CPU 0 and dnsperf runs on CPU 1: "QPS on one core".
# Passes alternate between the servers, so drift in the machine's load hits
# both alike. For each pass it prints QPS, loss and the server's CPU time per
# answered query (utime + stime from /proc/PID/stat over the pass); at the end
# the medians and the ratios halo/gdnsd. dnsperf on one core can be the
# bottleneck (then both servers show its rate and idle time); the CPU time per
# query, and the capacity of one core derived from it, compare the servers.
#
# Usage: apt-get install -y gdnsd dnsperf bind9-dnsutils python3   (as root)
#        cargo build --release
#        bench/dns.sh        # RUNS=3 DUR=10 CLIENTS=4 PIN=1 QUOTA=
# QUOTA=N caps each server at N % of one core (bench/lib.sh `cap`): the same
# CPU budget, so dnsperf is not the limit and the QPS compare capacity.
# Only 127.0.0.0/8 is used; only processes started here are stopped.
set -euo pipefail

RUNS=${RUNS:-3}
DUR=${DUR:-10}
CLIENTS=${CLIENTS:-4}
PIN=${PIN:-1}
GPORT=${GPORT:-25353}
HPORT=${HPORT:-25354}
BPORT=${BPORT:-28480}
HERE=$(cd "$(dirname "$0")" && pwd)
HALO=${HALO:-$HERE/../target/release/halo}
WORK=$(mktemp -d /tmp/halo-bench-dns.XXXXXX)
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
# shellcheck source=bench/dns/servers.sh
. "$HERE/dns/servers.sh"

for tool in gdnsd dnsperf dig python3 taskset; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install -y gdnsd dnsperf bind9-dnsutils python3" >&2; exit 2; }
done
[ -x "$HALO" ] || { echo "no halo binary at $HALO: run cargo build --release" >&2; exit 2; }
trap cleanup EXIT

if [ "$PIN" = 1 ]; then CLI="taskset -c 1"; SRV="taskset -c 0"; THREADS=1; else CLI=""; SRV=""; THREADS=$(nproc); fi

dns_backends
dns_configs
$SRV gdnsd -c "$WORK/gdnsd" start >> "$WORK/gdnsd.log" 2>&1 &
GDNSD_PID=$!
PIDS+=($GDNSD_PID)
cap "$GDNSD_PID" gdnsd
RUST_LOG=warn $SRV "$HALO" run -c "$WORK/halo.toml" > "$WORK/halo.log" 2>&1 &
HALO_PID=$!
PIDS+=($HALO_PID)
cap "$HALO_PID" halo
dns_wait_settled "$GPORT"
dns_wait_settled "$HPORT"

echo "# date: $(date -u +%Y-%m-%dT%H:%MZ)  host: $(uname -nr)  cpus: $(nproc)  pin=$PIN runs=$RUNS dur=${DUR}s clients=$CLIENTS threads=$THREADS quota=${QUOTA:-none}"
echo "# gdnsd $(gdnsd 2>&1 | sed -n 's/^gdnsd version //p' | head -1)  $(dnsperf -h 2>&1 | grep -o 'DNS Performance Testing Tool.*' | head -1)"
echo "# $("$HALO" --version)"
for n in plain fo mfo; do
  echo "# $n: gdnsd $(dig +short @127.0.0.1 -p $GPORT $n.example.test A | sort | tr '\n' ' ') | halo $(dig +short @127.0.0.1 -p $HPORT $n.example.test A | sort | tr '\n' ' ')"
done

# One dnsperf pass: prints "qps lost_pct avg_latency_us cpu_us_per_query".
run_perf() {  # port pid name
  local qf="$WORK/q_$3" out before after
  printf '%s A\n' "$3.example.test" > "$qf"
  before=$(cpu_ticks "$2")
  out=$($CLI dnsperf -s 127.0.0.1 -p "$1" -d "$qf" -l "$DUR" -c "$CLIENTS" -T 1 -Q 10000000 2>&1)
  after=$(cpu_ticks "$2")
  local qps lost comp lat
  qps=$(echo "$out" | sed -n 's/.*Queries per second: *//p')
  lost=$(echo "$out" | sed -n 's/.*Queries lost: *[0-9]* (\(.*\)%)/\1/p')
  comp=$(echo "$out" | sed -n 's/.*Queries completed: *\([0-9]*\).*/\1/p')
  lat=$(echo "$out" | sed -n 's/.*Average Latency (s): *\([0-9.]*\).*/\1/p')
  if [ -z "$qps" ] || [ "${comp:-0}" = 0 ]; then echo "dnsperf failed against port $1:" >&2; echo "$out" >&2; exit 1; fi
  awk -v q="$qps" -v l="$lost" -v a="$lat" -v t=$((after - before)) -v h="$TCK" -v c="$comp" \
    'BEGIN {printf "%.0f %.2f %.1f %.3f\n", q, l, a * 1e6, t / h * 1e6 / c}'
}

echo
echo "## dnsperf -c$CLIENTS -T1 -l$DUR, one name per pass (run: qps lost% avg_latency_us server_cpu_us/query)"
: > "$WORK/perf.txt"
for i in $(seq 1 "$RUNS"); do
  for n in plain fo mfo; do
    echo "gdnsd $n $(run_perf $GPORT $GDNSD_PID $n)" | tee -a "$WORK/perf.txt"
    echo "halo  $n $(run_perf $HPORT $HALO_PID $n)" | tee -a "$WORK/perf.txt"
  done
done
col() { awk -v s="$1" -v n="$2" -v c="$3" '$1==s && $2==n {print $c}' "$WORK/perf.txt" | median; }
echo
printf '%-6s %-6s %10s %7s %10s %12s\n' name server qps "lost%" "lat us" "cpu us/q"
for n in plain fo mfo; do
  for s in gdnsd halo; do
    printf '%-6s %-6s %10.0f %7.2f %10.1f %12.3f\n' "$n" "$s" "$(col $s $n 3)" "$(col $s $n 4)" "$(col $s $n 5)" "$(col $s $n 6)"
  done
done
# dnsperf on one core may saturate before a server does; CPU per query tells
# what one core of each server could answer (its capacity).
echo
for n in plain fo mfo; do
  awk -v n="$n" -v a="$(col halo "$n" 3)" -v b="$(col gdnsd "$n" 3)" -v x="$(col halo "$n" 6)" -v y="$(col gdnsd "$n" 6)" \
    'BEGIN {printf "ratio halo/gdnsd %-5s qps (median) %.3f   cpu per query (median, lower is better) %.3f\n", n, a / b, x / y
            printf "capacity of one core (1 / cpu per query) %-5s gdnsd %.0f qps, halo %.0f qps\n", n, 1e6 / y, 1e6 / x}'
done
