#!/usr/bin/env bash
# Deployment benchmark (issue 6): DEVICES devices are enrolled and put in one static group,
# AGENTS of them are simulated agents that hold the wake-up long-poll and reconcile manifests
# like the real agent; then the desired state changes three times (assign package A required
# to the group, remove that assignment, assign package B). Per round: the server's compile pass
# (its log line "manifests compiled … ms=", cross-checked with capstan_manifest_compile_seconds
# on /metrics) and, per agent, the time from the console request until its complete report for
# the new revision was answered.
#
# Usage: scripts/bench-deploy.sh [AGENTS] [DEVICES] [DATABASE]
#   AGENTS     simulated agents, default 1000
#   DEVICES    enrolled devices in the group (agents included), default 10000
#   DATABASE   absent: SQLite in a temp dir; `postgres`: a throwaway PostgreSQL 15 cluster
#              (default durable settings; as root it runs as the `postgres` user); or the URL of
#              an empty PostgreSQL database (postgres://…)
#   BENCH_ROUNDS (3), BENCH_SETTLE (3 s of quiet that end a round), BENCH_PGBIN
#   (/usr/lib/postgresql/15/bin), BENCH_OUT (target/bench-deploy-<time>), CARGO_TARGET_DIR.
# Output: the load generator's text report and a summary table on stdout; the JSON report,
# the server log and environment.txt in BENCH_OUT.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
AGENTS=${1:-1000}
DEVICES=${2:-10000}
DB=${3:-}
ROUNDS=${BENCH_ROUNDS:-3}
SETTLE=${BENCH_SETTLE:-3}
PGBIN=${BENCH_PGBIN:-/usr/lib/postgresql/15/bin}
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
OUT=${BENCH_OUT:-${CARGO_TARGET_DIR:-$ROOT/target}/bench-deploy-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

WORK=$(mktemp -d /tmp/capstan-deploy.XXXXXX)
SERVER=""
PG_DATA=""
PG_PID=""
AS_PG=()
cleanup() {
    if [ -n "$SERVER" ]; then
        kill -TERM "$SERVER" 2>/dev/null || true
        wait "$SERVER" 2>/dev/null || true
    fi
    if [ -n "$PG_PID" ]; then
        "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$PG_DATA/data" -m fast -w stop >/dev/null 2>&1 || true
        cp "$PG_DATA/server.log" "$OUT/postgres.log" 2>/dev/null || true
    fi
    [ -n "$PG_DATA" ] && rm -rf "$PG_DATA"
    rm -rf "$WORK"
}
trap cleanup EXIT

(cd "$ROOT" && cargo build --release -p capstan-server -p capstan-loadgen >&2)

if [ "$DB" = postgres ]; then
    # Its own directory: the postgres user must be able to reach it.
    PG_DATA=$(mktemp -d /tmp/capstan-deploy-pg.XXXXXX)
    if [ "$(id -u)" = 0 ]; then
        chown postgres:postgres "$PG_DATA"
        AS_PG=(setpriv --reuid=postgres --regid=postgres --init-groups)
    fi
    PG_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    "${AS_PG[@]}" "$PGBIN/initdb" -D "$PG_DATA/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
        --no-instructions >"$PG_DATA/initdb.log" 2>&1 || { cat "$PG_DATA/initdb.log" >&2; exit 1; }
    # Default durability on purpose: fsync, synchronous_commit and full_page_writes stay on.
    "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$PG_DATA/data" -l "$PG_DATA/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DATA -c max_connections=200" start >/dev/null
    PG_PID=$(head -1 "$PG_DATA/data/postmaster.pid")
    "${AS_PG[@]}" "$PGBIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres capstan
    DB="postgres://postgres@127.0.0.1:$PG_PORT/capstan"
    "${AS_PG[@]}" "$PGBIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -Atc \
        "SELECT name || '=' || setting FROM pg_settings WHERE name IN ('server_version','fsync','synchronous_commit','shared_buffers')" \
        > "$OUT/postgres-settings.txt"
fi

{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "commit: $(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
    echo "nproc: $(nproc), cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "ram: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), kernel: $(uname -r)"
    echo "database: ${DB:+postgres $(tr '\n' ' ' < "$OUT/postgres-settings.txt" 2>/dev/null)}${DB:-sqlite}"
    echo "agents: $AGENTS, devices: $DEVICES, rounds: $ROUNDS, settle: $SETTLE s"
    echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$OUT/environment.txt"

CAPSTAN_ADMIN_PASSWORD="bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export CAPSTAN_ADMIN_PASSWORD
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ARGS=(serve --data-dir "$WORK" --listen "127.0.0.1:$PORT" --no-tls)
[ -n "$DB" ] && ARGS+=(--database-url "$DB")
# Info level: the compile pass logs "manifests compiled devices=… changed=… ms=…".
CAPSTAN_LOG=info "$BIN/capstan-server" "${ARGS[@]}" >"$OUT/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 300); do
    curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
    kill -0 "$SERVER" 2>/dev/null || { cat "$OUT/server.log" >&2; echo "server exited" >&2; exit 1; }
    sleep 0.1
done
WATCH=(--watch-pid "server=$SERVER")
[ -n "$PG_PID" ] && WATCH+=(--watch-pid "postgres=$PG_PID")
"$BIN/capstan-loadgen" --server "http://127.0.0.1:$PORT" --mode deploy --agents "$AGENTS" \
    --devices "$DEVICES" --rounds "$ROUNDS" --settle "$SETTLE" --enroll-concurrency 64 \
    --timeout 300 --server-log "$OUT/server.log" "${WATCH[@]}" --output json >"$OUT/deploy.json"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/environment.txt"

python3 - "$OUT/deploy.json" "$OUT/environment.txt" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
d = r["deploy"]
print(open(sys.argv[2]).read().strip())
enroll = r["enroll"][0]["ops"]["enroll"]
cpu = ", ".join(f"{k} {v:.2f}" for k, v in sorted(r["cpu_cores_during_deploy"].items()))
print(f"enrolled {enroll['ok']} devices at {enroll['per_sec']}/s (p99 {enroll['p99_ms']} ms)")
print(f"CPU from group creation to the end, in cores: {cpu}")
print()
print(f"| round | change | compile pass (server) | CPU until compiled: server / postgres / all CPUs busy | "
      f"passes in round | acknowledged p50 / p99 / all ({d['agents']} agents) | last revision p50 / p99 / all | complete |")
print("|---|---|---|---|---|---|---|---|")
s = lambda ms: "-" if ms is None else (f"{ms / 1000:.2f} s" if ms >= 1000 else f"{ms:.0f} ms")
for x in d["rounds"]:
    c, a, f = x["compile"], x["acknowledged"], x["final_acknowledged"]
    pass_ = f"{s(c['pass_ms'])} ({c['changed']} of {c['devices']} changed)" if c["source"] == "log" \
        else f"{s(c['pass_ms'])} (metrics{'' if c.get('pass_exact') else ', approx.'})"
    last = (f"{s(f['p50_ms'])} / {s(f['p99_ms'])} / {s(x['all_final_ms'])}"
            if x["revisions_per_agent"]["max"] > 1 else "same")
    cpu = x.get("cpu_cores_until_compiled", {})
    busy = sum(v for k, v in cpu.items() if k.endswith("_busy"))
    cores = f"{cpu.get('server', 0):.2f} / {cpu['postgres']:.2f}" if "postgres" in cpu else f"{cpu.get('server', 0):.2f} / -"
    print(f"| {x['round']} | {x['action']} | {pass_} | {cores} / {busy:.2f} | {c['passes']} ({s(c['passes_total_ms'])}) | "
          f"{s(a['p50_ms'])} / {s(a['p99_ms'])} / {s(x['all_acknowledged_ms'])} | {last} | "
          f"{'yes' if x['complete'] else 'NO'} |")
print()
print(f"agent errors: {d['agent_errors'] or 'none'}")
EOF
echo "reports: $OUT" >&2
