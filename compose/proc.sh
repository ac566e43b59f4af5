# Shared by compose/kafka.sh and compose/mariadb.sh (sourced): a service process known by
# a pid file. Needs PID_FILE; `say` is defined by the sourcing script.

# The pid in $PID_FILE if that process is alive and its command line matches $1, else fail.
running_pid() {
  [ -f "$PID_FILE" ] || return 1
  local pid
  pid="$(cat "$PID_FILE")"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  grep -q "$1" "/proc/$pid/cmdline" 2>/dev/null || return 1
  echo "$pid"
}

# SIGTERM pid $1, wait up to $2 seconds for a clean exit, then SIGKILL; forget the pid file.
stop_pid() {
  local pid="$1" seconds="$2" i
  kill -TERM "$pid"
  for i in $(seq 1 $((seconds * 4))); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.25
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "pid $pid did not stop in ${seconds}s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  fi
  rm -f "$PID_FILE"
  say "stopped (pid $pid)"
}
