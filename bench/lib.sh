# bench/lib.sh: what the bench/ scripts share. Sourced, not run.
# Every process a script starts goes in PIDS; stop_started ends only those.

PIDS=()

stop_started() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}

# nginx_conf DIR SERVERS: an nginx.conf in DIR (one worker, no access log,
# long keep-alive, every temp path inside DIR) serving the `server { }` lines
# given in SERVERS.
nginx_conf() {
  mkdir -p "$1"
  cat > "$1/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 65s;
  client_body_temp_path $1;
  proxy_temp_path $1;
  fastcgi_temp_path $1;
  uwsgi_temp_path $1;
  scgi_temp_path $1;
$2
}
CONF
}

# wait_up URL [TRIES]: polls URL every 0.1 s until it answers (default 100
# tries; callgrind-slowed processes need more), else exits the script.
wait_up() {
  for _ in $(seq 1 "${2:-100}"); do
    curl -fs -o /dev/null "$1" && return 0
    sleep 0.1
  done
  echo "not answering: $1" >&2
  exit 1
}

# cpu_ticks PID: the process's utime + stime so far, in CLK_TCK ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TCK=$(getconf CLK_TCK)

# median: of the numbers on stdin, one per line.
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

# QUOTA=N (percent of one core; root, cgroup v1 cpu controller): cap PID NAME
# puts the process (every thread) in a cgroup of its own limited to N % of
# a core, the same budget for each server compared, so the load generator
# is not the limit. Without QUOTA it does nothing. cleanup stops what was
# started and removes the cgroups.
QUOTA=${QUOTA:-}
CGROUPS=()
cap() {
  [ -n "$QUOTA" ] || return 0
  local g=/sys/fs/cgroup/cpu/halo-bench-$2-$$
  mkdir "$g" || { echo "QUOTA needs root and /sys/fs/cgroup/cpu (cgroup v1)" >&2; exit 2; }
  CGROUPS+=("$g")
  echo 100000 > "$g/cpu.cfs_period_us"
  echo $((QUOTA * 1000)) > "$g/cpu.cfs_quota_us"
  echo "$1" > "$g/cgroup.procs"
}
cleanup() {
  stop_started
  for g in "${CGROUPS[@]:-}"; do [ -n "$g" ] && rmdir "$g" 2>/dev/null || true; done
}

# cleanup_callgrind: cleanup, then WORK removed, or kept with KEEP=1 (the
# callgrind files of bench/instructions.sh and bench/dns-instructions.sh,
# for callgrind_annotate).
cleanup_callgrind() {
  cleanup
  if [ "${KEEP:-0}" = 1 ]; then echo "callgrind files kept in $WORK"; else rm -rf "$WORK"; fi
}
