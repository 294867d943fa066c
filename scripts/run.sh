#!/bin/sh
# Capstan's one run command: builds the web console and the binaries, starts capstan-server on
# its embedded defaults (SQLite and the local depot in ./capstan-data), enrolls a capstan-agent
# on this machine and runs it, then prints the console/API URL and the admin credentials.
# Ctrl-C stops both. Running it again reuses the data directory (same admin, same device).
#
#   ./scripts/run.sh [--listen ADDR:PORT] [--data-dir DIR]
set -eu
cd "$(dirname "$0")/.."

LISTEN=127.0.0.1:8080
DATA_DIR=$PWD/capstan-data
while [ $# -gt 0 ]; do
    case $1 in
        --listen) LISTEN=$2; shift 2 ;;
        --data-dir) DATA_DIR=$2; shift 2 ;;
        -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
        *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
case $DATA_DIR in /*) ;; *) DATA_DIR=$PWD/$DATA_DIR ;; esac

# The console is embedded into the release binary, so it is built first. `npm ci` only runs
# when node_modules is missing or older than the lockfile.
if command -v npm >/dev/null 2>&1; then
    echo "==> building the web console (web/)"
    (
        cd web
        if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
            npm ci --no-audit --no-fund --loglevel=error
        fi
        npm run --silent build
    )
else
    echo "==> npm not found: the server starts without the web console (install Node.js 20.19+ and npm)"
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
echo "==> building capstan-server, capstan-agent and capstan (release; the first build takes a few minutes)"
cargo build --release --locked -p capstan-server -p capstan-agent -p capstan-cli
BIN=$CARGO_TARGET_DIR/release

mkdir -p "$DATA_DIR"
chmod 700 "$DATA_DIR"
PASSWORD_FILE=$DATA_DIR/admin-password
if [ ! -f "$PASSWORD_FILE" ] && [ ! -f "$DATA_DIR/capstan.db" ]; then
    (umask 077; head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$PASSWORD_FILE")
fi

SERVER_PID=""
AGENT_PID=""
cleanup() {
    [ -n "$AGENT_PID" ] && kill "$AGENT_PID" 2>/dev/null || true
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
    wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "==> starting capstan-server (log: $DATA_DIR/server.log)"
rm -f "$DATA_DIR/server.json"
if [ -f "$PASSWORD_FILE" ]; then
    CAPSTAN_ADMIN_PASSWORD_FILE=$PASSWORD_FILE "$BIN/capstan-server" serve --data-dir "$DATA_DIR" --listen "$LISTEN" \
        >"$DATA_DIR/server.log" 2>&1 &
else
    "$BIN/capstan-server" serve --data-dir "$DATA_DIR" --listen "$LISTEN" >"$DATA_DIR/server.log" 2>&1 &
fi
SERVER_PID=$!
i=0
while [ ! -f "$DATA_DIR/server.json" ]; do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "capstan-server exited; its log:" >&2
        cat "$DATA_DIR/server.log" >&2
        exit 1
    fi
    i=$((i + 1))
    [ $i -gt 300 ] && { echo "capstan-server did not start within 30 s" >&2; exit 1; }
    sleep 0.1
done
URL=$(sed -n 's/.*"url":"\([^"]*\)".*/\1/p' "$DATA_DIR/server.json")
FP=$(sed -n 's/.*"fingerprint":"\([^"]*\)".*/\1/p' "$DATA_DIR/server.json")

export CAPSTAN_CONFIG=$DATA_DIR/cli.toml
if [ -f "$PASSWORD_FILE" ]; then
    "$BIN/capstan" login --server "$URL" --fingerprint "$FP" --username admin < "$PASSWORD_FILE" >/dev/null
fi

AGENT_STATE=$DATA_DIR/agent
if [ ! -f "$AGENT_STATE/credentials.json" ]; then
    echo "==> enrolling a local capstan-agent"
    TOKEN=$("$BIN/capstan" tokens create --name "local agent (run.sh)" --max-uses 1 --expires-in 10m --output json \
        | sed -n 's/.*"token": *"\([^"]*\)".*/\1/p')
    "$BIN/capstan-agent" enroll --server "$URL" --fingerprint "$FP" --token "$TOKEN" --state-dir "$AGENT_STATE" \
        --identity instance
fi
echo "==> starting capstan-agent (log: $DATA_DIR/agent.log)"
"$BIN/capstan-agent" run --state-dir "$AGENT_STATE" >"$DATA_DIR/agent.log" 2>&1 &
AGENT_PID=$!

cat <<EOT

  Capstan is running.
    Console / API:   $URL   (self-signed certificate $FP)
    OpenAPI spec:    $URL/api/openapi.json
    Admin login:     admin / $(cat "$PASSWORD_FILE" 2>/dev/null || echo "(printed by the server at first start: see $DATA_DIR/server.log)")
    CLI:             export CAPSTAN_CONFIG=$CAPSTAN_CONFIG
                     $BIN/capstan devices list
    Enroll another machine:
                     $BIN/capstan tokens create --name lab   (prints a one-line install command)

  Press Ctrl-C to stop.
EOT
wait "$SERVER_PID"
