#!/usr/bin/env bash
# A real single-node Apache Kafka broker (KRaft, combined controller + broker) on this
# machine's JDK, for tests and CI. No Docker: the official broker jars come from Maven
# Central (compose/kafka/pom.xml) into .cache/kafka-libs, once.
#
#   bash compose/kafka.sh start    # resolve jars if needed, format storage once, start, wait until ready
#   bash compose/kafka.sh status   # exit 0 and print the bootstrap address if it is up and ready
#   bash compose/kafka.sh stop     # clean shutdown (SIGTERM, then SIGKILL after a timeout)
#   bash compose/kafka.sh clean    # stop and delete the broker's data
#
# Listens on loopback only. Settings (environment):
#   MLMD_KAFKA_PORT        client listener port             (default 9092)
#   MLMD_KAFKA_CTRL_PORT   controller listener port         (default 9093)
#   MLMD_KAFKA_HOME        config, data, log and pid file   (default ${TMPDIR:-/tmp}/mlmd-kafka)
#   MLMD_KAFKA_LIBS        where the broker jars are cached (default .cache/kafka-libs)
#   MLMD_KAFKA_HEAP        JVM heap                          (default 512m)
#   MLMD_KAFKA_JVM_OPTS    extra JVM flags                   (default none)
# Data survives stop/start (a restarted broker keeps its topics); `clean` removes it.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
POM="$ROOT/compose/kafka/pom.xml"
READY="$ROOT/compose/kafka/ready.py"
PORT="${MLMD_KAFKA_PORT:-9092}"
CTRL_PORT="${MLMD_KAFKA_CTRL_PORT:-9093}"
HOME_DIR="${MLMD_KAFKA_HOME:-${TMPDIR:-/tmp}/mlmd-kafka}"
LIBS="${MLMD_KAFKA_LIBS:-$ROOT/.cache/kafka-libs}"
HEAP="${MLMD_KAFKA_HEAP:-512m}"
BOOTSTRAP="127.0.0.1:$PORT"
PID_FILE="$HOME_DIR/kafka.pid"
LOG_FILE="$HOME_DIR/kafka.out"
DATA_DIR="$HOME_DIR/data"
CONFIG="$HOME_DIR/server.properties"
START_TIMEOUT="${MLMD_KAFKA_START_TIMEOUT:-90}"

say() { echo "kafka.sh: $*" >&2; }
# shellcheck source=proc.sh
. "$(dirname "${BASH_SOURCE[0]}")/proc.sh"

is_ready() { python3 "$READY" "$BOOTSTRAP" "${1:-0}"; }

resolve_jars() {
  # Copies the broker's runtime dependencies once; the stamp holds the pom's checksum,
  # so editing the Kafka version in the pom resolves again and anything else is instant.
  local stamp="$LIBS/.resolved" sum
  sum="$(sha256sum "$POM" | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sum" ]; then
    return 0
  fi
  command -v mvn >/dev/null || { say "mvn not found (apt-get install -y maven)"; exit 1; }
  say "resolving Kafka broker jars from Maven Central into $LIBS"
  rm -rf "$LIBS"
  mkdir -p "$LIBS"
  mkdir -p "$(dirname "$LIBS")"
  if ! mvn -q -B -f "$POM" dependency:copy-dependencies \
      -DoutputDirectory="$LIBS" -DincludeScope=runtime >"$LIBS.mvn.log" 2>&1; then
    say "mvn failed to resolve the broker jars:"; tail -30 "$LIBS.mvn.log" >&2; exit 1
  fi
  echo "$sum" >"$stamp"
}

write_config() {
  mkdir -p "$DATA_DIR"
  cat >"$CONFIG" <<EOF
# Written by compose/kafka.sh; single-node KRaft, loopback only.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CTRL_PORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CTRL_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$DATA_DIR
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# Topics are created by their users (KafkaLog) with the settings they need.
auto.create.topics.enable=false
EOF
  cat >"$HOME_DIR/log4j2.properties" <<EOF
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = out
logger.kafka.name = kafka
logger.kafka.level = WARN
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = INFO
EOF
}

# MLMD_KAFKA_JVM_OPTS adds JVM flags, e.g. "-XX:TieredStopAtLevel=1" (C1 only: faster
# start on a busy machine, lower peak throughput; the tests' throwaway brokers use it).
# shellcheck disable=SC2206
JAVA=(java -Xms128m "-Xmx$HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true
  ${MLMD_KAFKA_JVM_OPTS:-} "-Dlog4j2.configurationFile=$HOME_DIR/log4j2.properties" -cp "$LIBS/*")

format_storage() {
  # Once per data directory: KRaft needs a cluster id and meta.properties before first start.
  [ -f "$DATA_DIR/meta.properties" ] && return 0
  local cluster_id
  # 16 random bytes, base64url; never starting with "-" (it would parse as an option).
  cluster_id="$(python3 -c 'import base64,uuid
while True:
    i = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    if not i.startswith("-"): break
print(i)')"
  say "formatting storage in $DATA_DIR (cluster id $cluster_id)"
  "${JAVA[@]}" kafka.tools.StorageTool format -t "$cluster_id" -c "$CONFIG" >>"$LOG_FILE" 2>&1 \
    || { say "storage format failed:"; tail -20 "$LOG_FILE" >&2; exit 1; }
}

port_taken() {
  python3 - "$1" <<'EOF'
import socket, sys
s = socket.socket()
try:
    s.connect(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
EOF
}

start() {
  local started pid
  started=$(date +%s.%N)
  if pid="$(running_pid "kafka.Kafka")"; then
    if is_ready "$START_TIMEOUT"; then
      say "already running (pid $pid) on $BOOTSTRAP"
      return 0
    fi
    say "broker pid $pid is running but not ready after ${START_TIMEOUT}s; see $LOG_FILE"
    exit 1
  fi
  for p in "$PORT" "$CTRL_PORT"; do
    if port_taken "$p"; then
      say "port $p on 127.0.0.1 is in use by another process; set MLMD_KAFKA_PORT / MLMD_KAFKA_CTRL_PORT"
      exit 1
    fi
  done
  command -v java >/dev/null || { say "java not found (apt-get install -y openjdk-17-jre-headless)"; exit 1; }
  resolve_jars
  mkdir -p "$HOME_DIR"
  : >"$LOG_FILE"
  write_config
  format_storage
  # setsid: the broker outlives this script and is not hit by the caller's Ctrl-C.
  setsid "${JAVA[@]}" kafka.Kafka "$CONFIG" >>"$LOG_FILE" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$PID_FILE"
  local deadline=$((SECONDS + START_TIMEOUT))
  until is_ready 0; do
    if ! kill -0 "$pid" 2>/dev/null; then
      say "broker exited during startup; last lines of $LOG_FILE:"
      tail -30 "$LOG_FILE" >&2
      rm -f "$PID_FILE"
      exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      say "broker not ready after ${START_TIMEOUT}s; stopping it. Last lines of $LOG_FILE:"
      tail -30 "$LOG_FILE" >&2
      stop
      exit 1
    fi
    sleep 0.25
  done
  say "ready on $BOOTSTRAP (pid $pid, $(python3 -c "import time;print(f'{time.time()-$started:.1f}')")s, data in $DATA_DIR)"
}

stop() {
  local pid
  if ! pid="$(running_pid "kafka.Kafka")"; then
    rm -f "$PID_FILE"
    say "not running"
    return 0
  fi
  stop_pid "$pid" 30  # for a controlled shutdown
}

status() {
  local pid
  if pid="$(running_pid "kafka.Kafka")" && is_ready 0; then
    echo "running pid=$pid bootstrap=$BOOTSTRAP data=$DATA_DIR"
    return 0
  fi
  if [ -n "${pid:-}" ]; then
    echo "starting or unhealthy pid=$pid (see $LOG_FILE)"
  else
    echo "stopped"
  fi
  return 3
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  restart) stop; start ;;
  clean) stop; rm -rf "$HOME_DIR"; say "removed $HOME_DIR" ;;
  *) echo "usage: $0 start|stop|status|restart|clean" >&2; exit 2 ;;
esac
