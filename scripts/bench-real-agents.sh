#!/usr/bin/env bash
# DESIGN.md's real-agent target: a no-op job to 50 real agent processes on one machine, answered
# in ≤ 0.5 s median from `capstan run`, with ≤ 10 ms CPU per agent. Starts a release server
# (SQLite, plain HTTP on loopback), enrolls and starts N real `capstan-agent` processes (instance
# identities, separate state directories), waits until all are online, then runs
# `capstan run --group "All devices" -- true` ROUNDS times, reporting each wall time and the CPU
# the agents used during the rounds (utime + stime from /proc, per agent).
#
# Usage: scripts/bench-real-agents.sh [AGENTS=50] [ROUNDS=5]     (CARGO_TARGET_DIR honoured)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${1:-50}
ROUNDS=${2:-5}
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
(cd "$ROOT" && cargo build --release -p capstan-server -p capstan-agent -p capstan-cli >&2)
WORK=$(mktemp -d /tmp/capstan-real.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
export CAPSTAN_ADMIN_PASSWORD="bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
URL="http://127.0.0.1:$PORT"
"$BIN/capstan-server" serve --data-dir "$WORK/server" --listen "127.0.0.1:$PORT" --no-tls \
    >"$WORK/server.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do curl -fsS "$URL/readyz" >/dev/null 2>&1 && break; sleep 0.1; done

export CAPSTAN_CONFIG="$WORK/cli.toml" CAPSTAN_SERVER="$URL"
printf '%s\n' "$CAPSTAN_ADMIN_PASSWORD" | "$BIN/capstan" login --username admin >/dev/null
TOKEN=$("$BIN/capstan" tokens create --name bench --max-uses "$N" -o json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
AGENTS=()
for i in $(seq "$N"); do
    dir="$WORK/agent-$i"
    CAPSTAN_AGENT_ENROLL_TOKEN="$TOKEN" "$BIN/capstan-agent" enroll --server "$URL" \
        --state-dir "$dir" --identity instance >/dev/null 2>&1
    "$BIN/capstan-agent" run --state-dir "$dir" >"$dir.log" 2>&1 &
    PIDS+=($!)
    AGENTS+=($!)
done
echo "waiting for $N agents to be online…" >&2
for _ in $(seq 300); do
    online=$("$BIN/capstan" devices list --status online -o json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
    [ "$online" -ge "$N" ] && break
    sleep 0.2
done
sleep 5 # the first inventories and group evaluations settle; agents back in their long-polls
cpu() { # total utime+stime of the agents, in clock ticks
    local t=0
    for p in "${AGENTS[@]}"; do
        t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
    done
    echo "$t"
}
HZ=$(getconf CLK_TCK)
before=$(cpu)
for r in $(seq "$ROUNDS"); do
    start=$(date +%s.%N)
    "$BIN/capstan" run --group "All devices" -o json -- true >"$WORK/run-$r.json" 2>/dev/null
    end=$(date +%s.%N)
    ok=$(grep -c '"state":"succeeded"' "$WORK/run-$r.json" || true)
    python3 -c "print(f'round $r: {($end - $start) * 1000:.0f} ms wall, $ok/$N succeeded')"
    sleep 1
done
after=$(cpu)
python3 -c "print(f'agent CPU during the rounds: {($after - $before) * 1000 / $HZ / $N / $ROUNDS:.2f} ms per agent per job (all $N agents, idle time included)')"
