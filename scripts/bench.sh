#!/usr/bin/env bash
# Capstan benchmark: how many agent check-ins and full inventory ingests per second one server
# core sustains, on SQLite and on PostgreSQL, with plain HTTP and with TLS.
#
# Builds the release binaries, starts `capstan-server` pinned to one CPU (BENCH_SERVER_CPU,
# default 0) and runs `capstan-loadgen` pinned to another (BENCH_LOADGEN_CPU, default 1), one
# scenario after the other. PostgreSQL 15 is started here as a throwaway cluster with its
# DEFAULT durable settings (fsync, synchronous_commit and full_page_writes on), pinned to
# BENCH_PG_CPU (default: the load generator's CPU, so the server keeps its core to itself).
# Needs: taskset, python3, and for PostgreSQL /usr/lib/postgresql/15/bin (run as root, the
# cluster runs as the `postgres` user; as another user, as that user).
#
# Usage: scripts/bench.sh            # everything, results in target/bench-<time>/
#   BENCH_DURATION=25                # seconds per measured scenario
#   BENCH_BACKENDS="sqlite postgres" # which databases
#   BENCH_OUT=dir                    # where results go
#   BENCH_COMMIT=…                   # what to record as the commit (e.g. for an exported tree)
#   BENCH_NICE=-15                   # priority of server, database and load generator (root)
#   BENCH_SERVER_CPU=0 BENCH_LOADGEN_CPU=1 BENCH_PG_CPU=1
#   CARGO_TARGET_DIR                 # honoured
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DURATION=${BENCH_DURATION:-25}
BACKENDS=${BENCH_BACKENDS:-"sqlite postgres"}
SERVER_CPU=${BENCH_SERVER_CPU:-0}
LOADGEN_CPU=${BENCH_LOADGEN_CPU:-1}
PG_CPU=${BENCH_PG_CPU:-$LOADGEN_CPU}
PGBIN=${BENCH_PGBIN:-/usr/lib/postgresql/15/bin}
# On a shared machine, raise the benchmark's priority (root only) so that other work on the
# same CPUs disturbs it less; the report still shows how busy each CPU was with other work.
if [ "$(id -u)" = 0 ]; then NICE=${BENCH_NICE:--15}; else NICE=${BENCH_NICE:-0}; fi
PRIO=(nice -n "$NICE")
OUT=${BENCH_OUT:-$ROOT/target/bench-$(date +%Y%m%d-%H%M%S)}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET_DIR/release

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d /tmp/capstan-bench.XXXXXX)
SERVER_PID=""
PG_DATA=""
PG_PID=""

log() { printf '\n== %s\n' "$*" >&2; }

cleanup() {
    stop_server
    stop_postgres
    rm -rf "$WORK"
}
trap cleanup EXIT

# --- environment -------------------------------------------------------------------------
{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    if [ -n "${BENCH_COMMIT:-}" ]; then
        echo "commit: $BENCH_COMMIT"
    else
        echo "commit: $(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
    fi
    echo "nproc: $(nproc)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "ram: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
    echo "kernel: $(uname -r)"
    echo "pinning: server CPU $SERVER_CPU, load generator CPU $LOADGEN_CPU, postgres CPU $PG_CPU, nice $NICE"
    echo "uptime before: $(uptime)"
} > "$OUT/environment.txt"
cat "$OUT/environment.txt" >&2

log "building release binaries"
(cd "$ROOT" && cargo build --release -p capstan-server -p capstan-loadgen)

export CAPSTAN_ADMIN_PASSWORD="bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"

# --- server ------------------------------------------------------------------------------
# start_server NAME TLS(yes|no) [DATABASE_URL]: sets SERVER_PID, URL, FP
start_server() {
    local name=$1 tls=$2 db=${3:-}
    local data=$WORK/$name
    mkdir -p "$data"
    local args=(serve --data-dir "$data" --listen 127.0.0.1:0)
    [ "$tls" = no ] && args+=(--no-tls)
    [ -n "$db" ] && args+=(--database-url "$db")
    taskset -c "$SERVER_CPU" "${PRIO[@]}" "$BIN/capstan-server" "${args[@]}" >"$OUT/server-$name.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 300); do
        [ -s "$data/server.json" ] && break
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$OUT/server-$name.log" >&2; echo "server exited" >&2; exit 1; }
        sleep 0.2
    done
    [ -s "$data/server.json" ] || { echo "server did not start" >&2; exit 1; }
    URL=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["url"])' "$data/server.json")
    FP=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["fingerprint"] or "")' "$data/server.json")
    echo "server $name: $URL pid $SERVER_PID ${FP:+fingerprint $FP}" >&2
}

stop_server() {
    if [ -n "$SERVER_PID" ]; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
}

# --- PostgreSQL --------------------------------------------------------------------------
AS_PG=()
start_postgres() {
    # Its own directory: the postgres user must be able to reach it.
    PG_DATA=$(mktemp -d /tmp/capstan-bench-pg.XXXXXX)
    if [ "$(id -u)" = 0 ]; then
        chown postgres:postgres "$PG_DATA"
        AS_PG=(setpriv --reuid=postgres --regid=postgres --init-groups)
    fi
    PG_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    "${AS_PG[@]}" "$PGBIN/initdb" -D "$PG_DATA/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
        --no-instructions >"$PG_DATA/initdb.log" 2>&1 || { cat "$PG_DATA/initdb.log" >&2; exit 1; }
    # Default durability on purpose: fsync, synchronous_commit and full_page_writes stay on.
    taskset -c "$PG_CPU" "${PRIO[@]}" "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$PG_DATA/data" -l "$PG_DATA/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DATA -c max_connections=200" start >/dev/null
    PG_PID=$(head -1 "$PG_DATA/data/postmaster.pid")
    "${AS_PG[@]}" "$PGBIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -Atc \
        "SELECT name || '=' || setting FROM pg_settings WHERE name IN ('fsync','synchronous_commit','full_page_writes','wal_sync_method','shared_buffers','server_version')" \
        > "$OUT/postgres-settings.txt"
    echo "postgres on port $PG_PORT pid $PG_PID: $(tr '\n' ' ' < "$OUT/postgres-settings.txt")" >&2
}

create_db() {
    "${AS_PG[@]}" "$PGBIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres "$1"
    echo "postgres://postgres@127.0.0.1:$PG_PORT/$1"
}

stop_postgres() {
    if [ -n "$PG_PID" ]; then
        "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$PG_DATA/data" -m fast -w stop >/dev/null 2>&1 || true
        PG_PID=""
        cp "$PG_DATA/server.log" "$OUT/postgres.log" 2>/dev/null || true
    fi
    if [ -n "$PG_DATA" ]; then
        rm -rf "$PG_DATA"
        PG_DATA=""
    fi
}

# --- reporting ---------------------------------------------------------------------------
# report [--brief] FILE.json…: one line per measured phase (--brief), or Markdown tables.
report() {
    SERVER_CPU=$SERVER_CPU LOADGEN_CPU=$LOADGEN_CPU PG_CPU=$PG_CPU python3 - "$@" <<'PY'
import json, os, sys

args = sys.argv[1:]
brief = args[:1] == ["--brief"]
files = args[1:] if brief else args

def fmt(v, unit=""):
    return "-" if v is None else f"{v:g}{unit}"

def errors(ops):
    errs = {}
    for o in ops.values():
        for k, v in o["errors"].items():
            errs[k] = errs.get(k, 0) + v
    return ", ".join(f"{k} {v}" for k, v in sorted(errs.items())) or "0"

SERVER_CPU, LOADGEN_CPU, PG_CPU = (os.environ.get(k, d) for k, d in
    (("SERVER_CPU", "0"), ("LOADGEN_CPU", "1"), ("PG_CPU", "1")))

def cpu(phase):
    """Cores used by server / postgres / load generator, then the share of the server's and
    the load generator's CPU that other work on the machine took."""
    c = phase.get("cpu_cores", {})
    procs = " / ".join(f"{c[k]:.2f}" if k in c else "-" for k in ("server", "postgres", "loadgen"))
    ours = {SERVER_CPU: 0.0, LOADGEN_CPU: 0.0}
    ours[SERVER_CPU] += c.get("server", 0.0)
    ours[LOADGEN_CPU] += c.get("loadgen", 0.0)
    if "postgres" in c:
        ours[PG_CPU] = ours.get(PG_CPU, 0.0) + c["postgres"]
    other = " / ".join(
        f"{max(0.0, c[f'cpu{n}_busy'] - ours.get(n, 0.0)):.2f}" if f"cpu{n}_busy" in c else "-"
        for n in (SERVER_CPU, LOADGEN_CPU))
    return f"{procs} | {other}"

def cost(phase):
    """Server (and postgres) CPU microseconds per request of the phase."""
    c = phase.get("cpu_cores", {})
    rate = sum(s["per_sec"] for s in phase["ops"].values())
    if not rate:
        return "-"
    parts = [f"{c[k] * 1e6 / rate:.0f}" for k in ("server", "postgres") if k in c]
    return " / ".join(parts) or "-"

runs = []
for f in sorted(files, key=os.path.getmtime):  # the order the scenarios ran in
    with open(f) as fh:
        runs.append((os.path.basename(f)[:-5], json.load(fh)))

if brief:
    for name, r in runs:
        for p in r["phases"]:
            if p["name"].startswith("warmup"):
                continue
            for op, s in p["ops"].items():
                print(f"  {p['name']:<22} {op:<9} {s['per_sec']:>9.1f}/s  p50 {s['p50_ms']} ms  "
                      f"p99 {s['p99_ms']} ms  max {s['max_ms']} ms  errors {errors({op: s})}  "
                      f"cpu server/pg/loadgen | other work on server/loadgen CPU {cpu(p)}  "
                      f"server/pg µs per request {cost(p)}")
    sys.exit(0)

by_backend = {}
for name, r in runs:
    by_backend.setdefault(name.split("-")[0], []).append((name, r))
for backend, items in by_backend.items():
    print(f"\n### {backend}\n")
    print("| scenario | phase | operation | ok/s | p50 ms | p99 ms | p99.9 ms | max ms | errors | CPU cores: server / postgres / loadgen | other work on server / loadgen CPU | CPU µs per request: server / postgres |")
    print("|---|---|---|---:|---:|---:|---:|---:|---|---|---|---|")
    for name, r in items:
        scen = name[len(backend) + 1:]
        for p in r["phases"]:
            if p["name"].startswith("warmup"):
                continue
            for op, s in p["ops"].items():
                label = p["name"]
                if p.get("target_rate"):
                    label += f" (lag max {p['dispatch_lag_max_ms']} ms, skipped {p['skipped_busy']})"
                print(f"| {scen} | {label} | {op} | {s['per_sec']:.1f} | {s['p50_ms']} | {s['p99_ms']} | "
                      f"{s['p999_ms']} | {s['max_ms']} | {errors({op: s})} | {cpu(p)} | {cost(p)} |")
PY
}

# --- scenarios ---------------------------------------------------------------------------
# scenario FILE-NAME LOADGEN-ARGS…: runs the load generator against the current server
scenario() {
    local name=$1
    shift
    local watch=(--watch-pid "server=$SERVER_PID")
    [ -n "$PG_PID" ] && watch+=(--watch-pid "postgres=$PG_PID")
    log "$name: capstan-loadgen $*"
    taskset -c "$LOADGEN_CPU" "${PRIO[@]}" "$BIN/capstan-loadgen" --server "$URL" ${FP:+--fingerprint "$FP"} \
        "${watch[@]}" --output json "$@" >"$OUT/$name.json" 2>"$OUT/$name.stderr" \
        || { cat "$OUT/$name.stderr" >&2; echo "scenario $name failed" >&2; exit 1; }
    report --brief "$OUT/$name.json" >&2
}

run_backend() {
    local backend=$1 db_plain="" db_tls=""
    if [ "$backend" = postgres ]; then
        start_postgres
        db_plain=$(create_db capstan_plain)
        db_tls=$(create_db capstan_tls)
    fi

    start_server "$backend-plain" no "$db_plain"
    scenario "$backend-checkin-c64" --mode checkin --agents 1000 --concurrency 64 --duration "$DURATION"
    scenario "$backend-checkin-c256" --mode checkin --agents 1000 --concurrency 256 --duration "$DURATION"
    # The design target: 10,000 agents checking in every 10 s = 1,000 check-ins/s.
    scenario "$backend-checkin-open1000" --mode checkin --agents 10000 --rate 1000 --duration "$DURATION"
    scenario "$backend-inventory-c16" --mode inventory --agents 256 --concurrency 16 --packages 2000 --changes 10 --duration "$DURATION"
    # A fleet's steady state, at full speed: 95 % check-ins, 5 % full reports with 10 changes.
    scenario "$backend-mixed-c32" --mode mixed --agents 500 --concurrency 32 --packages 2000 --changes 10 --duration "$DURATION"
    stop_server

    start_server "$backend-tls" yes "$db_tls"
    scenario "$backend-tls-checkin-c64" --mode checkin --agents 1000 --concurrency 64 --duration "$DURATION"
    scenario "$backend-tls-checkin-open1000" --mode checkin --agents 10000 --rate 1000 --duration "$DURATION"
    stop_server

    [ "$backend" = postgres ] && stop_postgres
    return 0
}

for b in $BACKENDS; do
    log "backend $b"
    run_backend "$b"
done

echo "uptime after: $(uptime)" >> "$OUT/environment.txt"
report "$OUT"/*.json > "$OUT/summary.md"
cat "$OUT/summary.md"
echo "results: $OUT" >&2
