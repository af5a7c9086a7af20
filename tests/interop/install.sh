#!/usr/bin/env bash
# Idempotent installer for the interop suites (Debian, root; Rust + CPython 3.11+ with pip).
#  - apt: golang-go + golang-github-rabbitmq-amqp091-go-dev (amqp091-go source incl. its
#         integration tests, and its test dependency golang-uber-goleak-dev)
#  - venv in .cache/venv: pika, amqp, kombu, celery (pinned), pytest, pytest-timeout
#  - sdists of amqp and kombu (pinned) unpacked in .cache/src for their t/integration tests
#  - apt: prometheus (for promtool, promtool.sh), without recommends
#  - apt: chromium and chromium-driver, without recommends (the web UI and report suites
#         drive a real headless browser through Selenium)
#  - rabbitmqadmin v2 (pinned) with `cargo install` into ~/.cargo/bin (a few minutes the
#    first time; skipped when `rabbitmqadmin --version` there already reports it)
#  - apt: nodejs and npm, only when `node` is missing; then `npm ci` in amqplib/ (amqplib
#    pinned by the committed package-lock.json; skipped while node_modules matches it)
# Skips every step that is already done. Quiet unless something fails.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
t0=$(date +%s)
mkdir -p "$CACHE_DIR"

# 1. Go toolchain + amqp091-go source from Debian.
GO_SRC=/usr/share/gocode/src/github.com/rabbitmq/amqp091-go
if ! command -v go >/dev/null || [ ! -f "$GO_SRC/integration_test.go" ] \
   || [ ! -d /usr/share/gocode/src/go.uber.org/goleak ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq golang-go golang-github-rabbitmq-amqp091-go-dev >/dev/null 2>"$CACHE_DIR/apt.log" \
    || { cat "$CACHE_DIR/apt.log" >&2; exit 1; }
fi

# 2. Python venv with the client libraries and test runners.
PIP_PKGS="pika==$PIKA_VERSION amqp==$AMQP_VERSION kombu==$KOMBU_VERSION celery==$CELERY_VERSION pytest==9.2.0 pytest-timeout==2.4.0 selenium==$SELENIUM_VERSION"
if [ ! -x "$PY" ]; then
  rm -rf "$VENV"
  python3 -m venv "$VENV"
fi
if [ "$(cat "$VENV/.pkgs" 2>/dev/null)" != "$PIP_PKGS" ]; then
  # shellcheck disable=SC2086
  "$PY" -m pip install -q --disable-pip-version-check --no-input $PIP_PKGS
  echo "$PIP_PKGS" > "$VENV/.pkgs"
fi

# 3. Upstream sdists (for their t/integration tests).
mkdir -p "$CACHE_DIR/sdist" "$CACHE_DIR/src"
for spec in "amqp $AMQP_VERSION" "kombu $KOMBU_VERSION"; do
  set -- $spec
  if [ ! -d "$CACHE_DIR/src/$1-$2/t/integration" ]; then
    if [ ! -f "$CACHE_DIR/sdist/$1-$2.tar.gz" ]; then
      "$PY" -m pip download -q --disable-pip-version-check --no-input \
        --no-binary :all: --no-deps -d "$CACHE_DIR/sdist" "$1==$2"
    fi
    tar -xzf "$CACHE_DIR/sdist/$1-$2.tar.gz" -C "$CACHE_DIR/src"
  fi
done

# 4. promtool, from Debian's prometheus package (promtool.sh). The package also ships the
#    Prometheus server and its unit; recommends (node exporter and friends) are left out.
# tls-certs.sh makes the TLS suite's certificates with the openssl CLI.
if ! command -v openssl >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends openssl >/dev/null 2>"$CACHE_DIR/apt.log" \
    || { cat "$CACHE_DIR/apt.log" >&2; exit 1; }
fi

if ! command -v promtool >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>"$CACHE_DIR/apt.log" \
    || { cat "$CACHE_DIR/apt.log" >&2; exit 1; }
fi

# 5. The official management CLI, rabbitmqadmin v2 (Rust, crates.io). Not Debian's
#    /usr/bin/rabbitmqadmin, which is the unrelated Python v1.
if [ "$("$RABBITMQADMIN_BIN" --version 2>/dev/null)" != "rabbitmqadmin $RABBITMQADMIN_VERSION" ]; then
  cargo install rabbitmqadmin --locked --version "$RABBITMQADMIN_VERSION" --force \
    >"$CACHE_DIR/cargo-install.log" 2>&1 || { tail -30 "$CACHE_DIR/cargo-install.log" >&2; exit 1; }
  [ "$("$RABBITMQADMIN_BIN" --version 2>/dev/null)" = "rabbitmqadmin $RABBITMQADMIN_VERSION" ] \
    || { echo "install: $RABBITMQADMIN_BIN is not rabbitmqadmin $RABBITMQADMIN_VERSION after cargo install" >&2; exit 1; }
fi

# 6. A real browser for the web UI and benchmark report suites: Debian's Chromium and its
#    ChromeDriver (Selenium drives /usr/bin/chromedriver; it downloads nothing).
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null 2>"$CACHE_DIR/apt.log" \
    || { cat "$CACHE_DIR/apt.log" >&2; exit 1; }
fi

# 7. Node.js and the pinned amqplib for amqplib.sh. `npm ci` installs exactly the committed
#    lock file; the lock file's hash, stored in node_modules after a successful install,
#    skips it next time (and lets it run offline from npm's cache when the lock changes).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null 2>"$CACHE_DIR/apt.log" \
    || { cat "$CACHE_DIR/apt.log" >&2; exit 1; }
fi
NODE_DIR=$INTEROP_DIR/amqplib
lock_sum=$(sha256sum "$NODE_DIR/package-lock.json" | cut -d' ' -f1)
if [ "$(cat "$NODE_DIR/node_modules/.interop-lock-sha256" 2>/dev/null)" != "$lock_sum" ]; then
  (cd "$NODE_DIR" && npm ci --prefer-offline --no-audit --no-fund --loglevel=error) \
    >"$CACHE_DIR/npm.log" 2>&1 || { cat "$CACHE_DIR/npm.log" >&2; exit 1; }
  echo "$lock_sum" > "$NODE_DIR/node_modules/.interop-lock-sha256"
fi

touch "$CACHE_DIR/.install-ok"
echo "install: ok ($(( $(date +%s) - t0 ))s; go $(go env GOVERSION 2>/dev/null), amqp091-go $(dpkg-query -W -f='${Version}' golang-github-rabbitmq-amqp091-go-dev), pika $PIKA_VERSION, amqp $AMQP_VERSION, kombu $KOMBU_VERSION, celery $CELERY_VERSION, rabbitmqadmin $RABBITMQADMIN_VERSION, selenium $SELENIUM_VERSION, $(chromium --version 2>/dev/null | cut -d" " -f1-2), $(promtool --version 2>&1 | head -1 | cut -d' ' -f1-3), node $(node -v), amqplib $(node -p 'require("'"$NODE_DIR"'/node_modules/amqplib/package.json").version'))"
