#!/usr/bin/env bash
# amqplib (Node.js, promise API) against AMQP_URL: amqplib/amqplib.test.js under Node's
# built-in test runner (node:test, node:assert; no other npm dependencies). amqplib takes
# host, port, credentials and vhost from the URL itself. The pinned amqplib is installed in
# amqplib/node_modules by install.sh (npm ci from the committed package-lock.json).
set -uo pipefail
. "$(dirname "$0")/lib/common.sh"
dir=$INTEROP_DIR/amqplib
if ! command -v node >/dev/null || [ ! -f "$dir/node_modules/amqplib/package.json" ]; then
  echo "interop: amqplib not installed; run $INTEROP_DIR/install.sh first" >&2
  echo "amqplib: 0 passed, 1 failed, 0 skipped"
  exit 1
fi
logdir=$CACHE_DIR/logs; mkdir -p "$logdir"
# Private files while running (concurrent runs must not mix results).
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
log=$tmp/amqplib.log results=$tmp/amqplib.results
: > "$results"
rc=0
# Two reporters: the readable spec output into the log, and one "OUTCOME<TAB>NAME" line
# per test (amqplib/results-reporter.mjs) for lib/summarize.py.
(
  cd "$dir"
  timeout -k 10 "${SUITE_TIMEOUT:-280}" node --test \
    --test-reporter=spec --test-reporter-destination=stdout \
    --test-reporter=./results-reporter.mjs --test-reporter-destination="$results" \
    amqplib.test.js
) > "$log" 2>&1 || rc=$?
[ "${INTEROP_VERBOSE:-0}" = 1 ] && cat "$log"
cp "$log" "$logdir/amqplib.log"; echo "amqplib: log in $logdir/amqplib.log"
# Failing tests with their assertion, without the stack frames. When no test ran at all
# (the file did not load, e.g. amqplib missing or a syntax error), the log's head says why.
if [ "$rc" -ne 0 ] && ! grep -q '^✔ ' "$log"; then
  head -20 "$log" | sed 's/^/amqplib: /'
fi
grep -E '^✖ ' -A12 "$log" | grep -vE '^\s+at ' | sed 's/^/amqplib: /' | head -80
python3 "$INTEROP_DIR/lib/summarize.py" --suite amqplib --results "$results" \
  --known "$INTEROP_DIR/amqplib-known-failures.txt" --rc "$rc" --ok-rcs 0,1
