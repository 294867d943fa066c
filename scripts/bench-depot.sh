#!/usr/bin/env bash
# Depot download benchmark (issue 5, "Performance"): one large artifact downloaded by C concurrent
# clients from capstan-server (`GET /agent/v1/depot/blobs/{sha256}` with a device credential)
# and, for comparison, from a throwaway nginx serving the very same file (a symlink to the
# depot's blob file, so both read the same page-cached inode) with the server's own TLS
# certificate and key. Rounds alternate capstan / nginx so that drift in the machine's other load
# hits both alike. Also measures upload throughput (`POST /api/v1/depot/blobs`) and the server's
# peak memory (VmHWM, reset through /proc/PID/clear_refs before each phase, so the figure is that
# phase's own peak).
#
# Usage: scripts/bench-depot.sh
#   BENCH_SIZE=1G        artifact size (head -c syntax)
#   BENCH_CLIENTS=50     concurrent downloads per round
#   BENCH_ROUNDS=3       rounds per server (and upload repetitions)
#   BENCH_MODES="tls"    "tls", "plain" or "tls plain": plain HTTP on both sides is a diagnostic
#                        that separates the cost of TLS from the cost of the server's I/O path
#   CARGO_TARGET_DIR is honoured. Needs nginx (Debian: nginx-light), curl, python3.
#   Traffic goes to 127.0.0.1 only. Prints the per-round lines and a summary table.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SIZE=${BENCH_SIZE:-1G}
CLIENTS=${BENCH_CLIENTS:-50}
ROUNDS=${BENCH_ROUNDS:-3}
MODES=${BENCH_MODES:-tls}
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || { echo "nginx is needed (apt-get install nginx-light)" >&2; exit 1; }
ulimit -n 65536 2>/dev/null || true
(cd "$ROOT" && cargo build --release -p capstan-server >&2)

WORK=$(mktemp -d /tmp/capstan-depot.XXXXXX)
DATA=$WORK/server
SERVER=""
cleanup() {
    stop_nginx
    if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null || true; fi
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)[\"$1\"])"; }
now() { date +%s.%N; }
# utime + stime of a process, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
kib() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }
# Busy and total jiffies of the whole machine, for "was the CPU saturated".
machine_jiffies() { awk '/^cpu / {print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; }
HZ=$(getconf CLK_TCK)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

CAPSTAN_ADMIN_PASSWORD="bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export CAPSTAN_ADMIN_PASSWORD
SERVER_PORT=$(free_port)

# Starts capstan-server on DATA (plain HTTP when $1 = plain) and waits for server.json.
start_server() {
    local args=(serve --data-dir "$DATA" --listen "127.0.0.1:$SERVER_PORT")
    [ "$1" = plain ] && args+=(--no-tls)
    rm -f "$DATA/server.json"
    mkdir -p "$DATA"
    "$BIN/capstan-server" "${args[@]}" >>"$WORK/server.log" 2>&1 &
    SERVER=$!
    for _ in $(seq 300); do
        [ -f "$DATA/server.json" ] && break
        kill -0 "$SERVER" 2>/dev/null || { cat "$WORK/server.log" >&2; exit 1; }
        sleep 0.1
    done
    [ -f "$DATA/server.json" ] || { echo "capstan-server did not start" >&2; exit 1; }
    SERVER_URL=$(json_field url <"$DATA/server.json")
}
stop_server() {
    kill "$SERVER" 2>/dev/null || true
    wait "$SERVER" 2>/dev/null || true
    SERVER=""
}

NGINX_DIR=$WORK/nginx
NGINX_PID=""
# A throwaway nginx with its own prefix, logs and temp paths; `user root` so that its workers
# can read the blob inside the server's private data dir.
start_nginx() {
    local mode=$1 listen
    mkdir -p "$NGINX_DIR/www" "$NGINX_DIR/tmp"
    ln -sf "$BLOB_FILE" "$NGINX_DIR/www/$SHA"
    NGINX_PORT=$(free_port)
    if [ "$mode" = tls ]; then
        # TLS 1.3 as capstan-server negotiates (nginx 1.22's default list stops at 1.2).
        listen="listen 127.0.0.1:$NGINX_PORT ssl;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_certificate $DATA/tls/cert.pem;
        ssl_certificate_key $DATA/tls/key.pem;"
        NGINX_URL="https://127.0.0.1:$NGINX_PORT"
    else
        listen="listen 127.0.0.1:$NGINX_PORT;"
        NGINX_URL="http://127.0.0.1:$NGINX_PORT"
    fi
    cat >"$NGINX_DIR/nginx.conf" <<EOF
user root;
worker_processes auto;
daemon off;
pid $NGINX_DIR/nginx.pid;
error_log $NGINX_DIR/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65;
    default_type application/octet-stream;
    client_body_temp_path $NGINX_DIR/tmp/body;
    proxy_temp_path $NGINX_DIR/tmp/proxy;
    fastcgi_temp_path $NGINX_DIR/tmp/fastcgi;
    uwsgi_temp_path $NGINX_DIR/tmp/uwsgi;
    scgi_temp_path $NGINX_DIR/tmp/scgi;
    server {
        $listen
        root $NGINX_DIR/www;
    }
}
EOF
    "$NGINX" -p "$NGINX_DIR" -e "$NGINX_DIR/error.log" -c "$NGINX_DIR/nginx.conf" \
        >>"$NGINX_DIR/stdout.log" 2>&1 &
    NGINX_PID=$!
    for _ in $(seq 100); do
        curl -sk -o /dev/null "$NGINX_URL/" 2>/dev/null && return 0
        kill -0 "$NGINX_PID" 2>/dev/null || { cat "$NGINX_DIR/error.log" >&2; exit 1; }
        sleep 0.1
    done
    echo "nginx did not start" >&2
    exit 1
}
stop_nginx() {
    [ -n "$NGINX_PID" ] || return 0
    kill "$NGINX_PID" 2>/dev/null || true
    wait "$NGINX_PID" 2>/dev/null || true
    NGINX_PID=""
}
# Total CPU ticks of nginx's master and workers.
nginx_ticks() {
    local t=0 p
    for p in "$NGINX_PID" $(pgrep -P "$NGINX_PID" || true); do
        t=$((t + $(cpu_ticks "$p")))
    done
    echo "$t"
}

CURL=(curl -sS --http1.1 --max-time 900 --cacert "$DATA/tls/cert.pem")

# ---------------------------------------------------------------- setup and upload
start_server tls
API=$SERVER_URL/api/v1
echo "server $SERVER_URL (pid $SERVER), work dir $WORK" >&2
ADMIN=$(printf '{"username":"admin","password":"%s"}' "$CAPSTAN_ADMIN_PASSWORD" |
    "${CURL[@]}" -f -H 'Content-Type: application/json' --data-binary @- "$API/auth/login" |
    json_field token)
AUTH=(-H "Authorization: Bearer $ADMIN")

head -c "$SIZE" /dev/urandom >"$WORK/big.bin"
BYTES=$(stat -c %s "$WORK/big.bin")
t0=$(now)
SHA=$(sha256sum "$WORK/big.bin" | cut -d' ' -f1)
t1=$(now)
HASH_MBS=$(python3 -c "print(f'{$BYTES / ($t1 - $t0) / 1e6:.0f}')")

echo 5 >"/proc/$SERVER/clear_refs" 2>/dev/null || true
UPLOADS=()
for r in $(seq "$ROUNDS"); do
    # -T streams the file (--data-binary would read it all into curl's memory first).
    out=$("${CURL[@]}" -f -X POST -T "$WORK/big.bin" "${AUTH[@]}" -H 'Expect:' \
        -H 'Content-Type: application/octet-stream' -w '\n%{time_total}' "$API/depot/blobs")
    secs=$(tail -n1 <<<"$out")
    body=$(head -n1 <<<"$out")
    got=$(json_field sha256 <<<"$body")
    [ "$got" = "$SHA" ] || { echo "upload answered sha256 $got, expected $SHA" >&2; exit 1; }
    mbs=$(python3 -c "print(f'{$BYTES / $secs / 1e6:.0f}')")
    UPLOADS+=("$mbs")
    echo "upload $r: ${secs}s, $mbs MB/s, created=$(json_field created <<<"$body")" >&2
done
UPLOAD_HWM=$(kib "$SERVER" VmHWM)
rm -f "$WORK/big.bin"
BLOB_FILE=$(find "$DATA/depot" -type f -name "$SHA" | head -n1)
[ -n "$BLOB_FILE" ] || { echo "the blob file is not under $DATA/depot" >&2; exit 1; }

"${CURL[@]}" -f "${AUTH[@]}" -H 'Content-Type: application/json' -o /dev/null \
    --data-binary '{"name":"bench-big"}' "$API/packages"
"${CURL[@]}" -f "${AUTH[@]}" -H 'Content-Type: application/json' -o /dev/null --data-binary @- \
    "$API/packages/bench-big/versions" <<EOF
{"version":"1","artifacts":[{"platform":"linux","arch":"any","sha256":"$SHA","file_name":"big.bin"}],
 "spec":{"installer_type":"exe","install_command":["{file}"],
         "detection":{"type":"file_exists","path":"/nonexistent"}}}
EOF
ENROLL=$("${CURL[@]}" -f "${AUTH[@]}" -H 'Content-Type: application/json' \
    --data-binary '{"name":"bench","max_uses":1}' "$API/enrollment-tokens" | json_field token)
IDENT=$(head -c 32 /dev/urandom | sha256sum | cut -d' ' -f1)
DEVICE=$("${CURL[@]}" -f -H 'Content-Type: application/json' --data-binary @- \
    "$SERVER_URL/agent/v1/enroll" <<EOF | json_field device_token
{"token":"$ENROLL","identity":{"identity_key":"$IDENT","source":"instance"},
 "hostname":"bench-depot","agent_version":"0.1.0","os_family":"linux","capabilities":[]}
EOF
)

# ---------------------------------------------------------------- downloads
# One round: CLIENTS concurrent downloads of the whole blob; prints
# "wall_s gib_per_s ok server_cpu_s busy_pct rss_peak_kib" (rss only for capstan).
download_round() {
    local who=$1 url=$2 dir=$WORK/round
    rm -rf "$dir"
    mkdir -p "$dir"
    [ "$who" = capstan ] && { echo 5 >"/proc/$SERVER/clear_refs" 2>/dev/null || true; }
    local c0 m0 m1 t0 t1 c1
    if [ "$who" = nginx ]; then c0=$(nginx_ticks); else c0=$(cpu_ticks "$SERVER"); fi
    m0=$(machine_jiffies)
    local curls=()
    t0=$(now)
    for i in $(seq "$CLIENTS"); do
        "${CURL[@]}" -H "Authorization: Bearer $DEVICE" -o /dev/null \
            -w '%{http_code} %{size_download}\n' "$url" >"$dir/$i" 2>&1 &
        curls+=($!)
    done
    wait "${curls[@]}" || true
    t1=$(now)
    m1=$(machine_jiffies)
    if [ "$who" = nginx ]; then c1=$(nginx_ticks); else c1=$(cpu_ticks "$SERVER"); fi
    local ok
    ok=$(cat "$dir"/* | grep -c -x "200 $BYTES" || true)
    local hwm=-
    [ "$who" = capstan ] && hwm=$(kib "$SERVER" VmHWM)
    python3 - "$t0" "$t1" "$ok" "$c0" "$c1" "$HZ" "$BYTES" "$CLIENTS" "$m0" "$m1" "$hwm" <<'EOF'
import sys
t0, t1, ok, c0, c1, hz, size, n = (float(x) for x in sys.argv[1:9])
b0, a0 = (float(x) for x in sys.argv[9].split())
b1, a1 = (float(x) for x in sys.argv[10].split())
wall = t1 - t0
print(f"{wall:.2f} {ok * size / wall / 2**30:.3f} {int(ok)} {(c1 - c0) / hz:.2f} "
      f"{100 * (b1 - b0) / max(a1 - a0, 1):.0f} {sys.argv[11]}")
EOF
    if [ "$ok" -ne "$CLIENTS" ]; then
        echo "$who: only $ok of $CLIENTS downloads answered 200 with $BYTES bytes:" >&2
        sort "$dir"/* | uniq -c >&2
    fi
}

RESULTS=$WORK/results.txt
: >"$RESULTS"
for mode in $MODES; do
    if [ "$mode" = plain ]; then
        stop_server
        start_server plain
    fi
    start_nginx "$mode"
    CAP_URL=$SERVER_URL/agent/v1/depot/blobs/$SHA
    NGX_URL=$NGINX_URL/$SHA
    # Untimed: check the bytes (and warm both paths), and note the negotiated TLS parameters.
    for u in "$CAP_URL" "$NGX_URL"; do
        got=$("${CURL[@]}" -f -H "Authorization: Bearer $DEVICE" "$u" | sha256sum | cut -d' ' -f1)
        [ "$got" = "$SHA" ] || { echo "$u served sha256 $got, expected $SHA" >&2; exit 1; }
        echo "$mode: $u verified (sha256 $SHA)" >&2
        if [ "$mode" = tls ]; then
            hostport=${u#https://}
            hostport=${hostport%%/*}
            echo | openssl s_client -connect "$hostport" -brief 2>&1 |
                grep -E 'Protocol version|Ciphersuite' | sed "s|^|  $hostport |" >&2 || true
        fi
    done
    for r in $(seq "$ROUNDS"); do
        for who in capstan nginx; do
            url=$CAP_URL
            [ "$who" = nginx ] && url=$NGX_URL
            line=$(download_round "$who" "$url" | tail -n1)
            echo "$mode $who $r $line" >>"$RESULTS"
            read -r wall gibs ok cpu busy hwm <<<"$line"
            echo "$mode round $r $who: $ok/$CLIENTS ok, ${wall}s, $gibs GiB/s, server CPU ${cpu}s, machine busy ${busy}%, VmHWM ${hwm} KiB" >&2
        done
    done
    stop_nginx
done

# ---------------------------------------------------------------- summary
echo
echo "artifact $BYTES bytes, $CLIENTS concurrent clients, $ROUNDS rounds; $(nproc) CPUs; load average before: $LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "tree: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" status --porcelain -- crates 2>/dev/null | grep -q . && echo ' with uncommitted changes under crates/')"
echo "for scale, coreutils sha256sum of the file: $HASH_MBS MB/s"
echo "upload (POST /api/v1/depot/blobs, TLS, MB/s per run): ${UPLOADS[*]}; server VmHWM during uploads: $((UPLOAD_HWM / 1024)) MiB"
python3 - "$RESULTS" "$CLIENTS" "$BYTES" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
clients, size = int(sys.argv[2]), int(sys.argv[3])
print()
print("| mode | server | GiB/s median (min–max) | wall s median | server CPU s per GiB | machine busy % | peak RSS MiB | failed |")
print("|---|---|---|---|---|---|---|---|")
med = {}
for mode in dict.fromkeys(r[0] for r in rows):
    for who in ("capstan", "nginx"):
        rs = [r for r in rows if r[0] == mode and r[1] == who]
        if not rs:
            continue
        gib = [float(r[4]) for r in rs]
        wall = [float(r[3]) for r in rs]
        cpu = [float(r[6]) / (int(r[5]) * size / 2**30) if int(r[5]) else 0 for r in rs]
        busy = [float(r[7]) for r in rs]
        hwm = [int(r[8]) // 1024 for r in rs if r[8] != "-"]
        failed = sum(clients - int(r[5]) for r in rs)
        med[(mode, who)] = statistics.median(gib)
        print(f"| {mode} | {who} | {statistics.median(gib):.2f} ({min(gib):.2f}–{max(gib):.2f}) | "
              f"{statistics.median(wall):.1f} | {statistics.median(cpu):.2f} | "
              f"{statistics.median(busy):.0f} | {max(hwm) if hwm else '-'} | {failed} |")
print()
for mode in dict.fromkeys(r[0] for r in rows):
    if (mode, "capstan") in med and med[(mode, "nginx")]:
        print(f"{mode}: capstan / nginx throughput ratio {med[(mode, 'capstan')] / med[(mode, 'nginx')]:.2f} (target >= 0.9)")
EOF
