#!/usr/bin/env bash
# Job fan-out benchmark (issue 4): N simulated agents hold the wake-up long-poll like real ones,
# then a no-op job is created for all of them, three times; for each agent the load generator
# records the time from the job's creation to its claim ("acknowledged") and to its result.
#
# Usage: scripts/bench-fanout.sh [AGENTS] [DATABASE_URL]
#   AGENTS        default 1000 (10000 needs `ulimit -n` of at least ~25000, raised here if allowed)
#   DATABASE_URL  an empty PostgreSQL database (postgres://…); SQLite in a temp dir when absent
#   CARGO_TARGET_DIR is honoured. Output: the text report on stdout.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
AGENTS=${1:-1000}
DB=${2:-}
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
(cd "$ROOT" && cargo build --release -p capstan-server -p capstan-loadgen >&2)
WORK=$(mktemp -d /tmp/capstan-fanout.XXXXXX)
export CAPSTAN_ADMIN_PASSWORD="bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ARGS=(serve --data-dir "$WORK" --listen "127.0.0.1:$PORT" --no-tls)
[ -n "$DB" ] && ARGS+=(--database-url "$DB")
"$BIN/capstan-server" "${ARGS[@]}" >"$WORK/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 100); do
    curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
    sleep 0.1
done
"$BIN/capstan-loadgen" --server "http://127.0.0.1:$PORT" --agents "$AGENTS" --mode fanout \
    --rounds 3 --settle 5 --enroll-concurrency 64 --timeout 120 --watch-pid "server=$SERVER"
