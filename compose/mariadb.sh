#!/usr/bin/env bash
# A real MariaDB server on this machine for tests and CI, without systemd or Docker.
# Installs Debian's mariadb-server if it is missing, initialises a private data
# directory, starts mariadbd on 127.0.0.1 only, and creates a test database and a
# user that logs in over TCP with a password.
#
#   bash compose/mariadb.sh start    # install if needed, init once, start, create db + user, wait until ready
#   bash compose/mariadb.sh status   # exit 0 and print the connection URL if it accepts logins
#   bash compose/mariadb.sh stop     # clean shutdown
#   bash compose/mariadb.sh clean    # stop and delete the data directory
#   bash compose/mariadb.sh url      # print mysql://USER:PASSWORD@127.0.0.1:PORT/DATABASE
#
# Settings (environment), with defaults:
#   MLMD_MYSQL_PORT=3306  MLMD_MYSQL_DATABASE=mlmd_test  MLMD_MYSQL_USER=mlmd  MLMD_MYSQL_PASSWORD=mlmd
#   MLMD_MARIADB_HOME=${TMPDIR:-/tmp}/mlmd-mariadb   (data, socket, pid file, error log)
#   MLMD_MARIADB_ARGS   extra mariadbd options, e.g. "--innodb-flush-log-at-trx-commit=2"
# The server's root account has no password and is reachable only through the unix
# socket in MLMD_MARIADB_HOME: this is a throwaway test instance, not a deployment.
set -euo pipefail

PORT="${MLMD_MYSQL_PORT:-3306}"
DATABASE="${MLMD_MYSQL_DATABASE:-mlmd_test}"
DB_USER="${MLMD_MYSQL_USER:-mlmd}"
DB_PASSWORD="${MLMD_MYSQL_PASSWORD:-mlmd}"
HOME_DIR="${MLMD_MARIADB_HOME:-${TMPDIR:-/tmp}/mlmd-mariadb}"
DATA_DIR="$HOME_DIR/data"
SOCKET="$HOME_DIR/mysqld.sock"
PID_FILE="$HOME_DIR/mariadbd.pid"
ERR_LOG="$HOME_DIR/mariadbd.err"
START_TIMEOUT="${MLMD_MARIADB_START_TIMEOUT:-60}"
URL="mysql://$DB_USER:$DB_PASSWORD@127.0.0.1:$PORT/$DATABASE"

say() { echo "mariadb.sh: $*" >&2; }
# shellcheck source=proc.sh
. "$(dirname "${BASH_SOURCE[0]}")/proc.sh"

as_root() { mariadb --no-defaults --protocol=socket --socket="$SOCKET" -uroot "$@"; }

accepts_tcp_login() {
  mariadb --no-defaults --protocol=tcp -h127.0.0.1 -P"$PORT" -u"$DB_USER" -p"$DB_PASSWORD" \
    --connect-timeout=2 -e "SELECT 1" "$DATABASE" >/dev/null 2>&1
}

install_if_missing() {
  command -v mariadbd >/dev/null && command -v mariadb-install-db >/dev/null && return 0
  [ "$(id -u)" = 0 ] || { say "mariadb-server is not installed and installing it needs root"; exit 1; }
  say "installing mariadb-server from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  # The package's own service start is refused here (no init system); we start it below.
  if ! apt-get install -y -q mariadb-server mariadb-client >/dev/null; then
    apt-get update -q >/dev/null
    apt-get install -y -q mariadb-server mariadb-client >/dev/null
  fi
}

run_user_args() {
  # mariadbd refuses to run as root unless told; run it as the mysql account instead.
  if [ "$(id -u)" = 0 ] && id mysql >/dev/null 2>&1; then
    chown -R mysql:mysql "$HOME_DIR"
    echo "--user=mysql"
  fi
}

init_datadir() {
  [ -d "$DATA_DIR/mysql" ] && return 0
  say "initialising $DATA_DIR"
  mkdir -p "$DATA_DIR"
  # shellcheck disable=SC2046
  mariadb-install-db --no-defaults --datadir="$DATA_DIR" $(run_user_args) \
    --auth-root-authentication-method=normal --skip-test-db >"$HOME_DIR/install-db.log" 2>&1 \
    || { say "mariadb-install-db failed:"; tail -20 "$HOME_DIR/install-db.log" >&2; exit 1; }
}

create_db_and_user() {
  as_root <<EOF
CREATE DATABASE IF NOT EXISTS \`$DATABASE\`;
CREATE USER IF NOT EXISTS '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASSWORD';
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASSWORD';
ALTER USER '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASSWORD';
ALTER USER '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASSWORD';
-- Tests create and drop databases of their own (as ml-metadata's MySQL backend may).
GRANT ALL PRIVILEGES ON *.* TO '$DB_USER'@'127.0.0.1';
GRANT ALL PRIVILEGES ON *.* TO '$DB_USER'@'localhost';
FLUSH PRIVILEGES;
EOF
}

port_taken() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

start() {
  local pid started=$SECONDS
  if pid="$(running_pid "mariadbd\\|mysqld")"; then
    create_db_and_user
    if accepts_tcp_login; then
      say "already running (pid $pid): $URL"
      return 0
    fi
    say "mariadbd pid $pid is running but refuses logins on port $PORT; see $ERR_LOG"
    exit 1
  fi
  if port_taken "$PORT"; then
    say "port $PORT on 127.0.0.1 is in use by another process; set MLMD_MYSQL_PORT"
    exit 1
  fi
  install_if_missing
  mkdir -p "$HOME_DIR"
  init_datadir
  # shellcheck disable=SC2046,SC2086
  setsid mariadbd --no-defaults --datadir="$DATA_DIR" $(run_user_args) \
    --bind-address=127.0.0.1 --port="$PORT" --socket="$SOCKET" --pid-file="$PID_FILE" \
    --log-error="$ERR_LOG" --skip-name-resolve \
    --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci \
    --innodb-buffer-pool-size=256M --max-connections=500 \
    ${MLMD_MARIADB_ARGS:-} </dev/null >/dev/null 2>&1 &
  pid=$!
  local deadline=$((SECONDS + START_TIMEOUT))
  until mariadb-admin --no-defaults --socket="$SOCKET" -uroot ping >/dev/null 2>&1; do
    if ! kill -0 "$pid" 2>/dev/null; then
      say "mariadbd exited during startup; last lines of $ERR_LOG:"
      tail -20 "$ERR_LOG" >&2 || true
      exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      say "mariadbd not ready after ${START_TIMEOUT}s; see $ERR_LOG"
      kill -TERM "$pid" 2>/dev/null || true
      exit 1
    fi
    sleep 0.2
  done
  echo "$pid" >"$PID_FILE"  # mariadbd writes it too; ours is there even before it does
  create_db_and_user
  accepts_tcp_login || { say "started, but $DB_USER cannot log in over TCP on port $PORT"; exit 1; }
  say "ready (pid $pid, $((SECONDS - started))s): $URL"
}

stop() {
  local pid
  if ! pid="$(running_pid "mariadbd\\|mysqld")"; then
    say "not running"
    return 0
  fi
  stop_pid "$pid" 60  # InnoDB flushes on a clean shutdown
}

status() {
  local pid
  if pid="$(running_pid "mariadbd\\|mysqld")" && accepts_tcp_login; then
    echo "running pid=$pid url=$URL"
    return 0
  fi
  echo "stopped"
  return 3
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  restart) stop; start ;;
  url) echo "$URL" ;;
  clean) stop; rm -rf "$HOME_DIR"; say "removed $HOME_DIR" ;;
  *) echo "usage: $0 start|stop|status|restart|url|clean" >&2; exit 2 ;;
esac
