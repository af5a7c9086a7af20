#!/usr/bin/env bash
# Hare over TLS against Hare in plain AMQP, with hareperf, interleaved (docs/BENCHMARKS.md, TLS).
#
#   benches/tls_compare.sh                          # 3 runs of each scenario, 10 s each
#   RUNS=5 SCENARIOS="transient4k" benches/tls_compare.sh
#
# Knobs (environment):
#   RUNS             runs per scenario and mode (3)
#   SECONDS_PER_RUN  publishing time of each run (10)
#   SCENARIOS        any of: transient confirm100 transient4k
#   OUT              output directory (target/bench-tls/<timestamp>)
#
# Every run starts a fresh release Hare (--shards 2, its own data directory) with a plain and an
# AMQPS listener, runs one hareperf throughput scenario against one of them with --broker-pid,
# and stops it. Run i of a scenario goes plain, then TLS, before run i+1, so load from other
# work on the machine falls on both. The certificates come from tests/interop/tls-certs.sh;
# hareperf verifies the broker against their CA. Reports: $OUT/<scenario>-<mode>-<run>.json.
# At the end the medians are printed as a Markdown table (also $OUT/summary.md).
#
# Build first: cargo build --release -p hare -p hare-loadtest --bins
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-10}
SCENARIOS=${SCENARIOS:-transient confirm100 transient4k}
OUT=${OUT:-target/bench-tls/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
certs="$OUT/certs"
tests/interop/tls-certs.sh "$certs" >/dev/null

scenario_args() {
  case $1 in
    transient) echo "-x 1 -y 1 -s 16 -z $SECONDS_PER_RUN" ;;
    confirm100) echo "-x 1 -y 1 -s 16 -f -c 100 -z $SECONDS_PER_RUN" ;;
    transient4k) echo "-x 1 -y 1 -s 4096 -z $SECONDS_PER_RUN" ;;
    *) echo "unknown scenario $1" >&2; exit 2 ;;
  esac
}

run_one() { # scenario mode run
  local scenario=$1 mode=$2 run=$3 data pid plain tls uri
  data=$(mktemp -d "${TMPDIR:-/tmp}/hare-tls-bench.XXXXXX")
  target/release/hare --listen 127.0.0.1:0 --management-listen 127.0.0.1:0 \
    --metrics-listen 127.0.0.1:0 --tls-listen 127.0.0.1:0 \
    --tls-cert "$certs/server.pem" --tls-key "$certs/server.key" \
    --shards 2 --data-dir "$data" >"$data/stdout" 2>"$OUT/hare-$scenario-$mode-$run.log" &
  pid=$!
  for _ in $(seq 100); do grep -q "listening on" "$data/stdout" 2>/dev/null && break; sleep 0.1; done
  plain=$(awk '/listening on/ {print $4; exit}' "$data/stdout")
  tls=$(sed -nE 's#^hare AMQPS \(TLS\) on ([^ ]+).*#\1#p' "$data/stdout")
  local extra=()
  if [ "$mode" = tls ]; then
    uri="amqps://guest:guest@localhost:${tls##*:}/%2f"; extra=(--tls-ca "$certs/ca.pem")
  else
    uri="amqp://guest:guest@$plain/%2f"
  fi
  # shellcheck disable=SC2046 # the scenario's flags are words
  target/release/hareperf run throughput $(scenario_args "$scenario") --uri "$uri" "${extra[@]}" \
    --broker-pid "$pid" --quiet --json "$OUT/$scenario-$mode-$run.json" \
    >"$OUT/$scenario-$mode-$run.txt" 2>&1 || echo "tls_compare: $scenario $mode run $run failed"
  kill -TERM "$pid"; wait "$pid" || true
  rm -rf "$data"
}

for run in $(seq "$RUNS"); do
  for scenario in $SCENARIOS; do
    for mode in plain tls; do
      echo "tls_compare: run $run, $scenario, $mode"
      run_one "$scenario" "$mode" "$run"
    done
  done
done

python3 - "$OUT" $SCENARIOS <<'PYEOF' | tee "$OUT/summary.md"
import glob, json, statistics, sys
out, scenarios = sys.argv[1], sys.argv[2:]
print("| scenario | figure | plain | TLS | TLS ÷ plain |")
print("| --- | --- | ---: | ---: | ---: |")
figures = [("publish rate (msg/s)", "publish_rate_per_s", "{:,.0f}"),
           ("deliver rate (msg/s)", "deliver_rate_per_s", "{:,.0f}"),
           ("broker CPU (% of a core)", "broker_cpu_percent", "{:.0f} %"),
           ("hareperf CPU (% of a core)", "client_cpu_percent", "{:.0f} %")]
for scenario in scenarios:
    runs = {mode: [json.load(open(p))["results"] for p in sorted(glob.glob(f"{out}/{scenario}-{mode}-*.json"))]
            for mode in ("plain", "tls")}
    n = f"{len(runs['plain'])} / {len(runs['tls'])}"
    for index, (label, key, fmt) in enumerate(figures):
        med = {m: statistics.median(r[key] for r in rs) if rs else float("nan") for m, rs in runs.items()}
        ratio = f"{med['tls'] / med['plain']:.2f}×" if index < 2 and med["plain"] else ""
        name = f"{scenario} (n = {n})" if index == 0 else ""
        print(f"| {name} | {label} | {fmt.format(med['plain'])} | {fmt.format(med['tls'])} | {ratio} |")
    lost = {m: max((r["verification"]["lost"] for r in rs), default=0) for m, rs in runs.items()}
    print(f"|  | lost (worst run) | {lost['plain']} | {lost['tls']} | |")
PYEOF
