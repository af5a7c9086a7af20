# run_pytest SUITE SRC_DIR TEST_PATH...  (sourced after common.sh)
# Runs an upstream pytest suite from its unpacked sdist against AMQP_URL, with the
# interop plugin recording results, then summarises against SUITE-known-failures.txt (or the
# file KNOWN_FAILURES names).
run_pytest() {
  local suite=$1 src=$2; shift 2
  need_venv || { echo "$suite: 0 passed, 1 failed, 0 skipped"; return 1; }
  local logdir=$CACHE_DIR/logs; mkdir -p "$logdir"
  # Private files while running (concurrent runs must not mix results).
  local tmp; tmp=$(mktemp -d)
  local log=$tmp/$suite.log results=$tmp/$suite.results
  : > "$results"
  local rc=0
  (
    cd "$src"
    export INTEROP_RESULTS=$results PYTHONPATH=$INTEROP_DIR/lib${PYTHONPATH:+:$PYTHONPATH}
    export PYTHONDONTWRITEBYTECODE=1
    timeout -k 10 "${SUITE_TIMEOUT:-280}" "$PY" -m pytest -p pytest_interop -p no:cacheprovider \
      -o addopts= -q -rfE --timeout="${TEST_TIMEOUT:-60}" "$@"
  ) > "$log" 2>&1 || rc=$?
  [ "${INTEROP_VERBOSE:-0}" = 1 ] && cat "$log"
  cp "$log" "$logdir/$suite.log"; echo "$suite: log in $logdir/$suite.log"
  local src=0
  "$PY" "$INTEROP_DIR/lib/summarize.py" --suite "$suite" --results "$results" \
    --known "${KNOWN_FAILURES:-$INTEROP_DIR/$suite-known-failures.txt}" --rc "$rc" --ok-rcs 0,1 || src=$?
  rm -rf "$tmp"
  return $src
}
