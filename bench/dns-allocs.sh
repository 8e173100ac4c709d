#!/usr/bin/env bash
# bench/dns-allocs.sh: does halo's DNS query path allocate? Runs `halo run` on a
# small [gslb] zone under valgrind twice, answering N1 and then N2 queries of
# six kinds (bench/dns/queries.py), and prints the heap allocations of each run
# and their difference per extra query. A path that allocates per query shows
# about (N2-N1) x allocations-per-query more in the second run.
#
# Usage: apt-get install -y valgrind; cargo build --release; bench/dns-allocs.sh
#        N1=600 N2=6600 PORT=15353 by default. Only 127.0.0.1 is used.
set -euo pipefail
N1=${N1:-600}
N2=${N2:-6600}
PORT=${PORT:-15353}
HERE=$(cd "$(dirname "$0")" && pwd)
HALO=${HALO:-$HERE/../target/release/halo}
WORK=$(mktemp -d /tmp/halo-allocs.XXXXXX)
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
trap stop_started EXIT
command -v valgrind >/dev/null || { echo "missing valgrind: apt-get install -y valgrind" >&2; exit 2; }
[ -x "$HALO" ] || { echo "no halo binary at $HALO: run cargo build --release" >&2; exit 2; }

cat > "$WORK/halo.toml" <<CONF
[node]
name = "bench"
site = "east"
threads = 1
[gslb]
zone = "global.example.com"
listen = ["127.0.0.1:$PORT"]
  [[gslb.service]]
  name = "app"
    [[gslb.service.endpoint]]
    address = "192.0.2.20"
    [[gslb.service.endpoint]]
    address = "192.0.2.21"
    [[gslb.service.endpoint]]
    address = "2001:db8::20"
  [[gslb.service]]
  name = "w"
  strategy = "weighted"
  max_answers = 2
    [[gslb.service.endpoint]]
    address = "192.0.2.30"
    weight = 3
    [[gslb.service.endpoint]]
    address = "192.0.2.31"
CONF

allocs() {
  local n=$1 log="$WORK/valgrind-$1.log"
  valgrind --tool=memcheck --leak-check=no "$HALO" run -c "$WORK/halo.toml" >"$log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  for _ in $(seq 150); do grep -q 'DNS listening' "$log" && break; sleep 0.2; done
  python3 "$HERE/dns/queries.py" "$PORT" "$n" >/dev/null
  kill -TERM "$pid"
  wait "$pid" || true
  sed -n 's/.*total heap usage: \([0-9,]*\) allocs.*/\1/p' "$log" | tr -d ,
}

echo "# date: $(date -u +%Y-%m-%dT%H:%MZ)  host: $(uname -n) $(uname -r)  $("$HALO" --version 2>/dev/null || echo halo)"
a1=$(allocs "$N1")
a2=$(allocs "$N2")
echo "queries $N1: $a1 allocations in the whole run"
echo "queries $N2: $a2 allocations in the whole run"
awk -v a="$a1" -v b="$a2" -v n="$((N2 - N1))" 'BEGIN { printf "allocations per extra query: %.4f\n", (b - a) / n }'
rm -rf "$WORK"
