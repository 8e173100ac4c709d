# bench/dns/servers.sh: the servers bench/dns.sh and bench/dns-instructions.sh
# compare, set up the same way for both. Sourced, not run; uses WORK, BPORT,
# GPORT, HPORT, THREADS and HALO of the sourcing script.
#
#   backends  python3 http.server on 127.0.0.11 and .12 (port BPORT); .13 is dead
#   gdnsd 3   zone example.test: `plain` A RRset (2 addresses), `fo` simplefo
#             (.11 primary, .12 secondary), `mfo` multifo over .11/.12/.13,
#             tcp_connect monitor every 2 s
#   halo      the same zone as [gslb]: `plain` two [[gslb.record]] A, `fo` a
#             failover service (site a = .11, site b = .12), `mfo` round-robin
#             over the three addresses, each endpoint with its own tcp check

# dns_backends: starts the two live backends.
dns_backends() {
  mkdir -p "$WORK/www"
  for ip in 127.0.0.11 127.0.0.12; do
    python3 -m http.server --bind "$ip" "$BPORT" --directory "$WORK/www" >/dev/null 2>&1 &
    PIDS+=($!)
  done
}

# dns_configs: writes $WORK/gdnsd (config, zone) and $WORK/halo.toml, and has
# each server check its own.
dns_configs() {
  mkdir -p "$WORK/gdnsd/zones" "$WORK/gdnsd/run" "$WORK/gdnsd/state"
  cat > "$WORK/gdnsd/config" <<EOF
options => {
  listen => [ 127.0.0.1:$GPORT ]
  run_dir => $WORK/gdnsd/run
  state_dir => $WORK/gdnsd/state
  udp_threads => $THREADS
  tcp_threads => 1
  min_ttl => 1
}
service_types => {
  tcp_be => { plugin => tcp_connect, port => $BPORT, interval => 2, timeout => 1, down_thresh => 1, up_thresh => 1, ok_thresh => 1 }
}
plugins => {
  simplefo => {
    fo => { service_types => tcp_be, primary => 127.0.0.11, secondary => 127.0.0.12 }
  }
  multifo => {
    up_thresh => 0.3
    web => { service_types => tcp_be, be11 => 127.0.0.11, be12 => 127.0.0.12, be13 => 127.0.0.13 }
  }
}
EOF
  cat > "$WORK/gdnsd/zones/example.test" <<'EOF'
$TTL 300
@     SOA ns1 hostmaster 1 7200 1800 259200 60
@     NS  ns1
ns1   A   127.0.0.1
plain A   127.0.0.21
plain A   127.0.0.22
fo    30/30 DYNA simplefo!fo
mfo   30/30 DYNA multifo!web
EOF
  gdnsd -c "$WORK/gdnsd" checkconf > "$WORK/gdnsd.log" 2>&1 || { cat "$WORK/gdnsd.log" >&2; exit 1; }

  CHECK='{ check = { type = "tcp", port = '"$BPORT"', interval = "2s", timeout = "1s", rise = 1, fall = 1 } }'
  cat > "$WORK/halo.toml" <<EOF
[node]
name = "bench"
site = "a"
threads = $THREADS

[gslb]
zone = "example.test"
listen = ["127.0.0.1:$HPORT"]
nameservers = ["ns1.example.test"]
sites = ["a", "b"]
default_ttl = "300s"

  [[gslb.record]]
  name = "ns1"
  type = "A"
  value = "127.0.0.1"
  [[gslb.record]]
  name = "plain"
  type = "A"
  value = "127.0.0.21"
  [[gslb.record]]
  name = "plain"
  type = "A"
  value = "127.0.0.22"

  [[gslb.service]]
  name = "fo"
  strategy = "failover"
  failover_order = ["a", "b"]
  ttl = "30s"
    [[gslb.service.endpoint]]
    address = "127.0.0.11"
    health = $CHECK
    [[gslb.service.endpoint]]
    address = "127.0.0.12"
    site = "b"
    health = $CHECK

  [[gslb.service]]
  name = "mfo"
  strategy = "round-robin"
  ttl = "30s"
    [[gslb.service.endpoint]]
    address = "127.0.0.11"
    health = $CHECK
    [[gslb.service.endpoint]]
    address = "127.0.0.12"
    health = $CHECK
    [[gslb.service.endpoint]]
    address = "127.0.0.13"
    health = $CHECK
EOF
  "$HALO" check -c "$WORK/halo.toml" >/dev/null
}

# dns_settled PORT: the server answers as both should once past their first
# checks: fo is .11, .13 is gone from mfo.
dns_settled() {  # port
  local fo mfo
  fo=$(dig +time=1 +tries=1 +short @127.0.0.1 -p "$1" fo.example.test A 2>/dev/null || true)
  mfo=$(dig +time=1 +tries=1 +short @127.0.0.1 -p "$1" mfo.example.test A 2>/dev/null | sort | tr '\n' ' ' || true)
  [ "$fo" = 127.0.0.11 ] && [ "$mfo" = "127.0.0.11 127.0.0.12 " ]
}

# dns_wait_settled PORT [TRIES]: polls dns_settled every 0.1 s (default 100
# tries), else shows the servers' logs and exits the script.
dns_wait_settled() {
  for _ in $(seq 1 "${2:-100}"); do dns_settled "$1" && return 0; sleep 0.1; done
  echo "server on port $1 does not answer as expected:" >&2
  cat "$WORK"/*.log >&2
  exit 1
}
