# Shared helpers for the interop suites. Source it: . "$(dirname "$0")/lib/common.sh"
# Sets: INTEROP_DIR CACHE_DIR VENV PY AMQP_URL AMQP_HOST AMQP_PORT AMQP_USER AMQP_PASS AMQP_VHOST
INTEROP_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE_DIR=${INTEROP_CACHE:-$INTEROP_DIR/.cache}
VENV=$CACHE_DIR/venv
PY=$VENV/bin/python
export AMQP_URL=${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/}

# Pinned versions of the upstream suites (install.sh downloads exactly these sdists).
AMQP_VERSION=5.4.2
KOMBU_VERSION=5.7.0
PIKA_VERSION=1.4.4
# Celery 5.7.0 is the first release that accepts kombu 5.7 (5.5.x wants kombu<5.6).
CELERY_VERSION=5.7.0
# Selenium drives Debian's chromium through Debian's chromedriver (web UI and report suites).
SELENIUM_VERSION=4.45.0
# The official management CLI (rabbitmqadmin-ng), from crates.io with cargo install.
RABBITMQADMIN_VERSION=2.35.0
RABBITMQADMIN_BIN=${CARGO_HOME:-$HOME/.cargo}/bin/rabbitmqadmin

# Split AMQP_URL into its parts (RabbitMQ URI spec: "/" or empty path = vhost "/").
eval "$(python3 - <<'PYEOF'
import os, shlex
from urllib.parse import urlsplit, unquote
u = urlsplit(os.environ["AMQP_URL"])
path = u.path[1:] if u.path.startswith("/") else u.path
parts = {
    "AMQP_HOST": u.hostname or "127.0.0.1",
    "AMQP_PORT": str(u.port or (5671 if u.scheme == "amqps" else 5672)),
    "AMQP_USER": unquote(u.username or "guest"),
    "AMQP_PASS": unquote(u.password or "guest"),
    "AMQP_VHOST": unquote(path) if path else "/",
}
for k, v in parts.items():
    print(f"{k}={shlex.quote(v)}")
PYEOF
)"
export AMQP_HOST AMQP_PORT AMQP_USER AMQP_PASS AMQP_VHOST

need_venv() {
  if [ ! -x "$PY" ] || [ ! -f "$CACHE_DIR/.install-ok" ]; then
    echo "interop: not installed; run $INTEROP_DIR/install.sh first" >&2
    return 1
  fi
}
