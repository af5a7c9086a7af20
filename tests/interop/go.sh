#!/usr/bin/env bash
# amqp091-go's own integration tests (integration_test.go etc., build tag "integration")
# from Debian's golang-github-rabbitmq-amqp091-go-dev source, built offline in GOPATH
# mode (GO111MODULE=off; goleak comes from golang-uber-goleak-dev) against AMQP_URL.
# The upstream tests read the broker address from AMQP_URL only.
set -uo pipefail
. "$(dirname "$0")/lib/common.sh"
GO_SRC=${GO_SRC:-/usr/share/gocode/src/github.com/rabbitmq/amqp091-go}
logdir=$CACHE_DIR/logs; mkdir -p "$logdir"
# Private files while running (concurrent runs must not mix results); the log is
# copied to $logdir/go.log at the end.
work=$(mktemp -d); trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
log=$work/go.log results=$work/go.results
: > "$results"
if ! command -v go >/dev/null || [ ! -f "$GO_SRC/integration_test.go" ]; then
  echo "go: amqp091-go source or go toolchain missing; run install.sh" >&2
  echo "go: 0 passed, 1 failed, 0 skipped"; exit 1
fi
mkdir -p "$work/src/github.com/rabbitmq"
cp -r "$GO_SRC" "$work/src/github.com/rabbitmq/"
rc=0
(
  cd "$work/src/github.com/rabbitmq/amqp091-go"
  export GOPATH=$work:/usr/share/gocode GO111MODULE=off GOFLAGS= GOPROXY=off GOTOOLCHAIN=local
  export GOCACHE=$CACHE_DIR/go-build
  # -timeout below the outer limit so a hang ends in Go's panic listing the stuck test.
  timeout -k 10 "${SUITE_TIMEOUT:-290}" go test -tags integration -count=1 -v \
    -timeout "${GO_TEST_TIMEOUT:-270s}" .
) > "$log" 2>&1 || rc=$?
[ "${INTEROP_VERBOSE:-0}" = 1 ] && cat "$log"
cp "$log" "$logdir/go.log"; echo "go: log in $logdir/go.log"
# "--- PASS: TestX (0.01s)", subtests indented as "    --- FAIL: TestX/sub (…)".
sed -nE 's/^[[:space:]]*--- (PASS|FAIL|SKIP): ([^[:space:]]+).*/\1\t\2/p' "$log" \
  | sed -e 's/^PASS/pass/' -e 's/^FAIL/fail/' -e 's/^SKIP/skip/' > "$results"
crash=()
if grep -qE '^panic: |^fatal error: ' "$log"; then
  crash+=(--crash "<go test panicked: $(grep -m1 -E '^panic: |^fatal error: ' "$log" | cut -c1-120)>")
fi
if grep -qE '\[build failed\]|\[setup failed\]' "$log"; then
  crash+=(--crash "<go test build failed (see $log)>")
fi
python3 "$INTEROP_DIR/lib/summarize.py" --suite go --results "$results" \
  --known "$INTEROP_DIR/go-known-failures.txt" --rc "$rc" --ok-rcs 0,1 "${crash[@]}"
