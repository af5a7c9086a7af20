#!/usr/bin/env bash
# Hare against Debian's RabbitMQ on this machine, with hareperf, interleaved.
#
#   benches/compare.sh                 # every scenario, 3 runs each, 10 s per timed run
#   QUICK=1 benches/compare.sh         # smoke: 1 run, 2 s, small backlog and RSS backlog
#   SCENARIOS="transient latency5k" RUNS=5 benches/compare.sh
#
# Knobs (environment):
#   RUNS             runs per scenario and broker (3; QUICK: 1)
#   RUNS_RSS         runs of rss1m per broker (1: it is slow on RabbitMQ)
#   SECONDS_PER_RUN  publishing time of the timed scenarios (10; QUICK: 2)
#   BACKLOG_MESSAGES flood of the backlog scenario (100000; QUICK: 5000)
#   RSS_MESSAGES     messages left in the queue by rss1m (1000000; QUICK: 20000)
#   DECLARE_QUEUES   durable queues of the declare scenario (12000; QUICK: 2000)
#   RETRY_MESSAGES   messages of the retry scenario, each refused once (50000; QUICK: 2000)
#   RETRY_TTL_MS     time a refused message waits in the retry queue (1000; QUICK: 200)
#   DELAYED_MESSAGES delayed messages of the delayed scenario (1000000; QUICK: 20000)
#   DELAY_WINDOW_S   their delays spread over 0 to this many seconds (60; QUICK: 5)
#   HARE_DELAY_MODE  how the delayed scenario delays on Hare: plugin (default: the
#                    x-delayed-message exchange) or ttl-dlx; RabbitMQ always uses ttl-dlx (Debian's
#                    package has no delayed-message plugin)
#   RABBIT_TOOL      script that starts and stops RabbitMQ on loopback (start PORT | stop)
#   SCENARIOS        any of: transient confirm100 confirm1000 backlog latency5k cpu20k rss1m
#                    declare retry delayed
#   OUT              output directory (target/bench-compare/<timestamp>)
#   RABBIT_PORT      AMQP port of RabbitMQ (5690)
#
# Each run of each scenario goes Hare first, then RabbitMQ, and run i of every scenario comes
# before run i+1 of any: load from other work on the shared machine then spreads over both
# brokers instead of landing on one of them. Every report hareperf writes stays under $OUT
# (<scenario>/<broker>-<run>.json), with broker logs under $OUT/logs; at the end
# benches/compare_medians.py prints the medians as a Markdown table, also kept in
# $OUT/summary.md, and `hareperf compare --median-runs --html` writes a page per scenario,
# <scenario>/compare.html (the medians of the runs with ratios, and every chart with the
# median run of each broker), listed by $OUT/compare.html next to summary.md.
#
# Build first: cargo build --release -p hare -p hare-loadtest --bins
set -euo pipefail

# Paths below are relative to the repository root, wherever the script is called from.
cd "$(dirname "${BASH_SOURCE[0]}")/.."

QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then
  # Small enough to check the whole matrix end to end in a few minutes; the figures mean little.
  RUNS=${RUNS:-1}
  SECONDS_PER_RUN=${SECONDS_PER_RUN:-2}
  BACKLOG_MESSAGES=${BACKLOG_MESSAGES:-5000}
  RSS_MESSAGES=${RSS_MESSAGES:-20000}
  DECLARE_QUEUES=${DECLARE_QUEUES:-2000}
  RETRY_MESSAGES=${RETRY_MESSAGES:-2000}
  RETRY_TTL_MS=${RETRY_TTL_MS:-200}
  DELAYED_MESSAGES=${DELAYED_MESSAGES:-20000}
  DELAY_WINDOW_S=${DELAY_WINDOW_S:-5}
fi
RUNS=${RUNS:-3}
RUNS_RSS=${RUNS_RSS:-1}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-10}
BACKLOG_MESSAGES=${BACKLOG_MESSAGES:-100000}
RSS_MESSAGES=${RSS_MESSAGES:-1000000}
DECLARE_QUEUES=${DECLARE_QUEUES:-12000}
RETRY_MESSAGES=${RETRY_MESSAGES:-50000}
RETRY_TTL_MS=${RETRY_TTL_MS:-1000}
DELAYED_MESSAGES=${DELAYED_MESSAGES:-1000000}
DELAY_WINDOW_S=${DELAY_WINDOW_S:-60}
# Hare gets the x-delayed-message exchange soon; until then it delays with TTL and dead
# lettering like RabbitMQ. Set to `plugin` to time the exchange instead.
HARE_DELAY_MODE=${HARE_DELAY_MODE:-plugin}
SCENARIOS=${SCENARIOS:-"transient confirm100 confirm1000 backlog latency5k cpu20k rss1m declare retry delayed"}
RABBIT_PORT=${RABBIT_PORT:-5690}
OUT=${OUT:-target/bench-compare/$(date +%Y%m%d-%H%M%S)}

HARE_BIN=target/release/hare
HAREPERF_BIN=target/release/hareperf
# A script that starts (`start PORT`) and stops (`stop`) a RabbitMQ on loopback.
RABBIT_TOOL=${RABBIT_TOOL:-/work/shared/tools/rabbitmq-local.sh}
RABBIT_URI="amqp://guest:guest@127.0.0.1:${RABBIT_PORT}/%2f"
# The management API that rabbitmq-local.sh enables; used only to find queues a failed run
# left behind.
RABBIT_API=http://127.0.0.1:15672/api
# How long a broker may take to come up or to exit after SIGTERM before we give up.
BROKER_START_TIMEOUT_S=30
BROKER_STOP_TIMEOUT_S=30
# Queue of rss1m: its own name, so a leftover can never be mistaken for another scenario's.
RSS_QUEUE=hareperf-rss

HARE_PID=""
HARE_DATA=""
HARE_URI=""
RABBIT_PID=""
RABBIT_STARTED=0

log() { printf '[compare %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------------------------------------
# Brokers

# Starts a fresh Hare on a free port and an empty data directory, so no run sees the state of
# another. Port 0 lets the kernel pick the port; the "listening on" line tells us which.
hare_start() {
  local name=$1
  HARE_DATA=$(mktemp -d "$OUT/data/hare.XXXXXX")
  local log_file="$OUT/logs/hare-$name.log"
  "$HARE_BIN" --listen 127.0.0.1:0 --management-listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 \
    --data-dir "$HARE_DATA" --shards 2 >"$log_file" 2>&1 &
  HARE_PID=$!
  local port="" waited=0
  while [[ -z $port ]]; do
    kill -0 "$HARE_PID" 2>/dev/null || die "hare exited during startup; see $log_file"
    ((waited < BROKER_START_TIMEOUT_S * 10)) || die "hare did not listen within ${BROKER_START_TIMEOUT_S} s"
    sleep 0.1
    waited=$((waited + 1))
    port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$log_file" | head -1)
  done
  HARE_URI="amqp://guest:guest@127.0.0.1:${port}/%2f"
}

# SIGTERM, as an operator would stop it; the data directory goes with it, and with it any
# queue the run kept (rss1m).
hare_stop() {
  [[ -n $HARE_PID ]] || return 0
  kill -TERM "$HARE_PID" 2>/dev/null || true
  local waited=0
  while kill -0 "$HARE_PID" 2>/dev/null && ((waited < BROKER_STOP_TIMEOUT_S * 10)); do
    sleep 0.1
    waited=$((waited + 1))
  done
  if kill -0 "$HARE_PID" 2>/dev/null; then
    log "hare (pid $HARE_PID) ignored SIGTERM for ${BROKER_STOP_TIMEOUT_S} s; killing it"
    kill -KILL "$HARE_PID" 2>/dev/null || true
  fi
  wait "$HARE_PID" 2>/dev/null || log "hare (pid $HARE_PID) exited with status $?"
  HARE_PID=""
  rm -rf "$HARE_DATA"
  HARE_DATA=""
}

# rabbitmq-local.sh configures one node for the whole machine (/etc/rabbitmq), so a node that
# is already running is somebody else's: refuse rather than stop it at the end.
rabbit_start() {
  if pgrep -x beam.smp >/dev/null; then
    die "an Erlang node (beam.smp) is already running; stop it first ($RABBIT_TOOL stop)"
  fi
  RABBIT_STARTED=1
  "$RABBIT_TOOL" start "$RABBIT_PORT" | tee "$OUT/logs/rabbitmq-start.log" >&2
  # Ask the node itself for its pid: rabbitmqctl runs a beam.smp of its own, so the first
  # beam.smp in the process list is not always the broker.
  RABBIT_PID=$(rabbitmqctl eval 'list_to_integer(os:getpid()).' 2>/dev/null | tr -dc '0-9')
  [[ -n $RABBIT_PID && $(cat "/proc/$RABBIT_PID/comm" 2>/dev/null) == beam.smp ]] ||
    die "cannot find the pid of RabbitMQ's beam.smp (got '$RABBIT_PID')"
  log "RabbitMQ is pid $RABBIT_PID"
}

rabbit_stop() {
  ((RABBIT_STARTED)) || return 0
  "$RABBIT_TOOL" stop >&2 || true
  RABBIT_STARTED=0
}

# hareperf deletes its queues at the end of a run, but not when it crashes or is killed; a
# leftover would feed old messages into the next run, so delete it. Only queues named like
# ours (hareperf, hareperf-rss): the node's database may hold other people's durable queues.
rabbit_delete_leftover_queues() {
  local queues queue
  queues=$(curl -sf -u guest:guest "$RABBIT_API/queues/%2f?columns=name" |
    python3 -c 'import json, sys; print("\n".join(q["name"] for q in json.load(sys.stdin)))') ||
    { log "could not list RabbitMQ's queues"; return 0; }
  while IFS= read -r queue; do
    [[ $queue == hareperf* ]] || continue
    log "deleting queue '$queue' left behind on RabbitMQ"
    curl -sf -u guest:guest -X DELETE "$RABBIT_API/queues/%2f/$queue" >/dev/null ||
      log "could not delete queue '$queue'"
  done <<<"$queues"
}

cleanup() {
  local status=$?
  hare_stop
  rabbit_stop
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------------
# One hareperf run

# perf <broker> <scenario> <run> <hareperf run arguments…>
# Runs hareperf against the broker that is up, writing <scenario>/<broker>-<run>.json and the
# printed summary next to it. A non-zero status (a message lost, a worker failed) is logged and
# the matrix goes on: the table marks the loss, and one bad run should not throw away the rest.
perf() {
  local broker=$1 scenario=$2 run=$3
  shift 3
  local uri pid
  case $broker in
    hare) uri=$HARE_URI pid=$HARE_PID ;;
    rabbitmq) uri=$RABBIT_URI pid=$RABBIT_PID ;;
  esac
  local base="$OUT/$scenario/$broker-$run"
  log "$scenario run $run on $broker: hareperf run $*"
  if ! "$HAREPERF_BIN" run "$@" --uri "$uri" --broker-pid "$pid" --quiet --json "$base.json" \
    >"$base.txt" 2>&1; then
    log "$scenario run $run on $broker: hareperf exited non-zero; see $base.txt"
  fi
}

# ---------------------------------------------------------------------------------------------
# Scenarios: scenario_<name> <broker> <run>, with the broker already up.

# 1 producer → 1 consumer, 16 B transient messages, no confirms: the raw message rate.
scenario_transient() {
  perf "$1" transient "$2" throughput -x 1 -y 1 -s 16 -z "$SECONDS_PER_RUN"
}

# The same, persistent, with at most 100 (1,000) unconfirmed messages per producer.
scenario_confirm100() {
  perf "$1" confirm100 "$2" throughput -x 1 -y 1 -s 16 -f -c 100 -z "$SECONDS_PER_RUN"
}
scenario_confirm1000() {
  perf "$1" confirm1000 "$2" throughput -x 1 -y 1 -s 16 -f -c 1000 -z "$SECONDS_PER_RUN"
}

# The incident with hareperf's defaults (4 producers, confirm window 1,000, the troubled
# consumers); only the size of the flood is a knob.
scenario_backlog() {
  perf "$1" backlog "$2" backlog --backlog-messages "$BACKLOG_MESSAGES"
}

# One producer at a fixed 5,000 msg/s: latency without queueing.
scenario_latency5k() {
  perf "$1" latency5k "$2" latency -x 1 -y 1 -s 16 -r 5000 -z "$SECONDS_PER_RUN"
}

# A fixed 20,000 msg/s, so both brokers do the same work and their CPU time compares directly.
scenario_cpu20k() {
  perf "$1" cpu20k "$2" latency -x 1 -y 1 -s 16 -r 20000 -z "$SECONDS_PER_RUN"
}

# RSS_MESSAGES × 100 B persistent messages, confirmed, into a durable queue nobody consumes;
# then the broker's RSS with that backlog in place. With no consumer hareperf reports what is
# left queued instead of loss, and exits non-zero only if a message went unconfirmed or missing
# from the queue; compare_medians.py also checks the count in the report. hareperf reads the
# RSS at the start and at the end of its run (broker_rss_start_kib, broker_rss_end_kib), which
# the table uses; the reading here, 2 s later, is what the broker settles to.
scenario_rss1m() {
  local broker=$1 run=$2 pid
  case $broker in
    hare) pid=$HARE_PID ;;
    rabbitmq) pid=$RABBIT_PID ;;
  esac
  local base="$OUT/rss1m/$broker-$run"
  local idle_kib
  idle_kib=$(rss_kib "$pid")
  perf "$broker" rss1m "$run" throughput -x 1 -y 0 -C "$RSS_MESSAGES" -s 100 -f -c 1000 \
    -u "$RSS_QUEUE" --keep-queues
  # Let the broker settle (RabbitMQ moves messages from its queue process into the message
  # store after the confirms) so the figure is the steady cost of holding the backlog.
  sleep 2
  local backlog_kib
  backlog_kib=$(rss_kib "$pid")
  printf '{"idle_rss_kib": %s, "backlog_rss_kib": %s, "messages": %s}\n' \
    "$idle_kib" "$backlog_kib" "$RSS_MESSAGES" >"$base.rss.json"
  log "rss1m run $run on $broker: VmRSS idle ${idle_kib} KiB, with the backlog ${backlog_kib} KiB"
  # Delete the queue with hareperf itself: no producer, no consumer, the same durable declare,
  # and the usual delete at the end of the run. Hare loses it with its data directory anyway.
  local uri
  case $broker in
    hare) uri=$HARE_URI ;;
    rabbitmq) uri=$RABBIT_URI ;;
  esac
  "$HAREPERF_BIN" run throughput -x 0 -y 0 -f -u "$RSS_QUEUE" --uri "$uri" --quiet \
    >"$base.delete.txt" 2>&1 || log "rss1m: deleting $RSS_QUEUE on $broker failed; see $base.delete.txt"
}

# DECLARE_QUEUES durable queues declared one after another on one connection, timed per
# window of 2,000: whether a declare costs more as the definitions grow.
scenario_declare() {
  perf "$1" declare "$2" declare --declare-queues "$DECLARE_QUEUES" --declare-window 2000
}

# RETRY_MESSAGES persistent messages (2 consumers) through a work queue that dead-letters
# every message it refuses to a retry queue with a RETRY_TTL_MS TTL, which dead-letters it back:
# each message refused once, acked on its second delivery. Loss must be 0.
scenario_retry() {
  perf "$1" retry "$2" retry -x 1 -y 2 --retry-messages "$RETRY_MESSAGES" \
    --retry-ttl-ms "$RETRY_TTL_MS"
}

# DELAYED_MESSAGES messages delayed by 0 to DELAY_WINDOW_S seconds in a random order: how late
# each fires, and the broker's RSS with them held. RabbitMQ has no delayed-message plugin here
# and expires per-message TTLs only at the head of the queue, so it delays with ttl-dlx and
# fires late; Hare uses HARE_DELAY_MODE.
scenario_delayed() {
  local mode=ttl-dlx
  [[ $1 == hare ]] && mode=$HARE_DELAY_MODE
  perf "$1" delayed "$2" delayed --delayed-messages "$DELAYED_MESSAGES" \
    --delay-window-s "$DELAY_WINDOW_S" --delay-mode "$mode"
}

# ---------------------------------------------------------------------------------------------
# Pages

# One hareperf comparison page per scenario, and compare.html linking them. RabbitMQ's runs
# come first so the page's ratio column is Hare ÷ RabbitMQ, as in summary.md. Only the reports
# themselves: rss1m's <broker>-<run>.rss.json files hold compare.sh's own readings.
write_compare_pages() {
  local scenario broker file reports index="$OUT/compare.html"
  {
    echo '<!DOCTYPE html>'
    echo '<html lang="en"><head><meta charset="utf-8"><title>Hare vs RabbitMQ</title></head><body>'
    echo "<h1>Hare vs RabbitMQ, $(date -I)</h1>"
    echo '<p>Medians of the runs in summary.md; one page per scenario with every chart:</p><ul>'
  } >"$index"
  for scenario in $SCENARIOS; do
    reports=()
    for broker in rabbitmq hare; do
      for file in "$OUT/$scenario/$broker"-*.json; do
        [[ $(basename "$file") =~ ^$broker-[0-9]+\.json$ ]] && reports+=("$file")
      done
    done
    ((${#reports[@]} > 0)) || continue
    if "$HAREPERF_BIN" compare --median-runs --html "$OUT/$scenario/compare.html" "${reports[@]}" \
      >"$OUT/$scenario/compare.md" 2>&1; then
      echo "<li><a href=\"$scenario/compare.html\">$scenario</a></li>" >>"$index"
    else
      log "$scenario: hareperf compare --html failed; see $OUT/$scenario/compare.md"
    fi
  done
  echo '</ul></body></html>' >>"$index"
}

# VmRSS of a process, in KiB.
rss_kib() {
  awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}

# ---------------------------------------------------------------------------------------------
# Main

for bin in "$HARE_BIN" "$HAREPERF_BIN"; do
  [[ -x $bin ]] || die "$bin is missing; build with: cargo build --release -p hare -p hare-loadtest --bins"
done
for scenario in $SCENARIOS; do
  declare -F "scenario_$scenario" >/dev/null || die "unknown scenario '$scenario'"
done

mkdir -p "$OUT/logs" "$OUT/data"
for scenario in $SCENARIOS; do mkdir -p "$OUT/$scenario"; done
# The knobs of this run, so a table can be traced back to how it was made.
{
  echo "date=$(date -Iseconds)"
  echo "git=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo +dirty)"
  echo "kernel=$(uname -r) cores=$(nproc)"
  echo "QUICK=$QUICK RUNS=$RUNS RUNS_RSS=$RUNS_RSS SECONDS_PER_RUN=$SECONDS_PER_RUN"
  echo "BACKLOG_MESSAGES=$BACKLOG_MESSAGES RSS_MESSAGES=$RSS_MESSAGES DECLARE_QUEUES=$DECLARE_QUEUES"
  echo "RETRY_MESSAGES=$RETRY_MESSAGES RETRY_TTL_MS=$RETRY_TTL_MS DELAYED_MESSAGES=$DELAYED_MESSAGES DELAY_WINDOW_S=$DELAY_WINDOW_S HARE_DELAY_MODE=$HARE_DELAY_MODE"
  echo "SCENARIOS=\"$SCENARIOS\""
} >"$OUT/settings.txt"
log "writing under $OUT"

# One RabbitMQ for the whole matrix: its startup takes tens of seconds, and hareperf deletes
# its queues after each run, which is what keeps the runs independent.
rabbit_start
# A compare.sh that was killed may have left a queue behind in the node's database.
rabbit_delete_leftover_queues

max_runs=$((RUNS > RUNS_RSS ? RUNS : RUNS_RSS))
for ((run = 1; run <= max_runs; run++)); do
  for scenario in $SCENARIOS; do
    limit=$RUNS
    [[ $scenario == rss1m ]] && limit=$RUNS_RSS
    ((run <= limit)) || continue
    hare_start "$scenario-$run"
    "scenario_$scenario" hare "$run"
    hare_stop
    "scenario_$scenario" rabbitmq "$run"
    rabbit_delete_leftover_queues
  done
done

rabbit_stop
# Every Hare run removed its own data directory; only the empty parent is left.
rmdir "$OUT/data" 2>/dev/null || true
python3 benches/compare_medians.py "$OUT" | tee "$OUT/summary.md"
write_compare_pages
log "reports under $OUT; table in $OUT/summary.md, charts from $OUT/compare.html"
