#!/usr/bin/env bash
# bench/dns-instructions.sh: instructions per DNS query, halo vs gdnsd, under
# callgrind on a fixed workload. Repeatable where qps on this shared VM is
# not (DESIGN.md §5): the same count for the same binaries and queries,
# whatever else the machine does. User space only: callgrind does not see
# the kernel, which is about 95 % of either server's CPU time per query on
# loopback (perf, BENCHMARKS.md), so this compares the servers' own work,
# and bench/dns.sh their speed.
#
# Setup: the servers and zone of bench/dns.sh (bench/dns/servers.sh), one UDP
# worker each, each under valgrind --tool=callgrind. For each name (plain,
# fo, mfo): WARM queries, counters zeroed (callgrind_control -z), N queries
# (dnsperf -n 1 over a file of N lines, -c CLIENTS), counters dumped; the
# instructions of every thread since the zeroing / queries completed is the
# figure. The health checks (every 2 s) run inside the window too: a few
# thousand instructions each, noise next to N queries.
#
# Usage: apt-get install -y gdnsd dnsperf bind9-dnsutils valgrind python3   (as root)
#        cargo build --release
#        bench/dns-instructions.sh        # N=20000 WARM=2000 CLIENTS=4
#        KEEP=1 bench/dns-instructions.sh # keeps the callgrind files for callgrind_annotate
# Only 127.0.0.0/8 is used; only processes started here are stopped.
set -euo pipefail

N=${N:-20000}
WARM=${WARM:-2000}
CLIENTS=${CLIENTS:-4}
GPORT=${GPORT:-25373}
HPORT=${HPORT:-25374}
BPORT=${BPORT:-28490}
THREADS=1
HERE=$(cd "$(dirname "$0")" && pwd)
HALO=${HALO:-$HERE/../target/release/halo}
WORK=$(mktemp -d /tmp/halo-dns-instr.XXXXXX)
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
# shellcheck source=bench/dns/servers.sh
. "$HERE/dns/servers.sh"

for tool in gdnsd dnsperf dig python3 valgrind callgrind_control; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install -y gdnsd dnsperf bind9-dnsutils valgrind python3" >&2; exit 2; }
done
[ -x "$HALO" ] || { echo "no halo binary at $HALO: run cargo build --release" >&2; exit 2; }
trap cleanup_callgrind EXIT

dns_backends
dns_configs
VG="valgrind --tool=callgrind --dump-instr=no --collect-atstart=yes"
$VG --callgrind-out-file="$WORK/gdnsd.cg" gdnsd -c "$WORK/gdnsd" start > "$WORK/gdnsd.log" 2>&1 &
GDNSD_PID=$!
PIDS+=($GDNSD_PID)
RUST_LOG=warn $VG --callgrind-out-file="$WORK/halo.cg" "$HALO" run -c "$WORK/halo.toml" > "$WORK/halo.log" 2>&1 &
HALO_PID=$!
PIDS+=($HALO_PID)
dns_wait_settled "$GPORT" 600
dns_wait_settled "$HPORT" 600

echo "# date: $(date -u +%Y-%m-%dT%H:%MZ)  host: $(uname -nr)  N=$N WARM=$WARM clients=$CLIENTS"
echo "# gdnsd $(gdnsd 2>&1 | sed -n 's/^gdnsd version //p' | head -1)  $("$HALO" --version)"

# queries NAME COUNT PORT: sends COUNT queries for NAME once; prints how many
# were answered.
queries() {
  local qf="$WORK/q_$1_$2" out
  [ -f "$qf" ] || for _ in $(seq 1 "$2"); do echo "$1.example.test A"; done > "$qf"
  out=$(dnsperf -s 127.0.0.1 -p "$3" -d "$qf" -n 1 -c "$CLIENTS" -T 1 2>&1)
  echo "$out" | sed -n 's/.*Queries completed: *\([0-9]*\).*/\1/p'
}

DUMPS_gdnsd=0
DUMPS_halo=0
: > "$WORK/ir.txt"
for name in plain fo mfo; do
  for server in gdnsd halo; do
    if [ "$server" = gdnsd ]; then port=$GPORT; pid=$GDNSD_PID; else port=$HPORT; pid=$HALO_PID; fi
    queries "$name" "$WARM" "$port" >/dev/null
    callgrind_control -z "$pid" >/dev/null 2>&1
    done_n=$(queries "$name" "$N" "$port")
    callgrind_control -d "$pid" >/dev/null 2>&1
    var=DUMPS_$server
    printf -v "$var" '%d' $(( ${!var} + 1 ))
    # Dump k (1, 2, ...) holds every thread's instructions since the zeroing.
    ir=$(awk '/^summary:/ {s += $2} END {print s + 0}' "$WORK/$server.cg.${!var}")
    echo "$name $server $ir $done_n" | tee -a "$WORK/ir.txt"
  done
done

echo
awk '
  {ir[$1 " " $2] = $3; n[$1 " " $2] = $4}
  END {
    printf "%-6s %16s %16s %10s\n", "name", "gdnsd instr/q", "halo instr/q", "halo/gdnsd"
    split("plain fo mfo", names, " ")
    for (i = 1; i <= 3; i++) {
      k = names[i]
      g = ir[k " gdnsd"] / n[k " gdnsd"]; h = ir[k " halo"] / n[k " halo"]
      printf "%-6s %16.0f %16.0f %10.3f\n", k, g, h, h / g
    }
  }' "$WORK/ir.txt"
