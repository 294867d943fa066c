#!/usr/bin/env bash
# Console benchmark (issue 7): a server with many synthetic devices, enrolled through the real
# enrollment API by capstan-loadgen (never written into the database behind the server's back);
# then the device-list API (first page, search, filters, sorting) p50/p95 from a small closed
# loop, and in Chromium the time from navigation to the rendered device table and from typing a
# search to the filtered table (web/scripts/bench-console.mjs).
#
# Usage: scripts/bench-console.sh [DEVICES] [DATABASE_URL]
#   DEVICES       default 50000
#   DATABASE_URL  an empty PostgreSQL database (postgres://…); SQLite in a temp dir when absent
#   CARGO_TARGET_DIR is honoured; needs Node.js with web/node_modules (npm ci) and
#   /usr/bin/chromium (or $CHROMIUM). Output: enrollment figures on stderr, a Markdown report
#   on stdout. BENCH_REQUESTS / BENCH_CONCURRENCY / BENCH_BROWSER_ROUNDS tune the loops.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEVICES=${1:-50000}
DB=${2:-}
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
# The release server embeds web/dist, so the console is built first.
(cd "$ROOT/web" && npm run build >&2)
(cd "$ROOT" && cargo build --release -p capstan-server -p capstan-loadgen >&2)
WORK=$(mktemp -d /tmp/capstan-console-bench.XXXXXX)
CAPSTAN_ADMIN_PASSWORD="bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export CAPSTAN_ADMIN_PASSWORD
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
# A fixed seed gives hostnames bench-abcd-00000 … (no digits in the seed part), which the
# search and tag-filter scenarios rely on. One short check-in pass marks the devices seen.
START=$(date +%s)
"$BIN/capstan-loadgen" --server "http://127.0.0.1:$PORT" --agents "$DEVICES" --mode checkin \
    --duration 2 --warmup 0 --enroll-concurrency 64 --concurrency 64 --seed $((0xabcd)) \
    --timeout 120 --watch-pid "server=$SERVER" >&2
echo "enrolled $DEVICES devices in $(( $(date +%s) - START )) s" >&2
(cd "$ROOT/web" && node scripts/bench-console.mjs "http://127.0.0.1:$PORT")
