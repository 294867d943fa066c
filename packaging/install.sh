#!/bin/sh
# Capstan agent installer (POSIX sh; no bash needed).
#
# This file is a template. capstan-server serves it at /install.sh after replacing these
# placeholders, each written as the NAME between two "@@" marks:
#   SERVER_URL    the server's base URL as agents reach it (no trailing slash)
#   FINGERPRINT   SHA-256 fingerprint of the server certificate ("sha256:<hex>"); empty for
#                 plain HTTP or a certificate from a public CA
#   UNIT_FILE     the text of packaging/capstan-agent.service
#   AGENT_SHA256  optional: hex SHA-256 of the binary served at /download/capstan-agent; if the
#                 server leaves it unreplaced, the script works without it
# Comments never spell a placeholder out, because the server would replace it there too.
#
# Usage:
#   curl -fsSL https://SERVER/install.sh | sh -s -- --token TOKEN \
#       [--state-dir DIR] [--bin-dir DIR] [--identity hardware|instance] [--no-service]
# The token may also come from the environment variable CAPSTAN_ENROLL_TOKEN.
#
# Trust model. Everything this script trusts comes from the script itself: the server URL, the
# certificate fingerprint and (optionally) the agent binary's hash. So the script must reach
# you intact: fetch it over HTTPS that curl verifies, or pin the server key when fetching it
# (curl --pinnedpubkey), or compare it with what the console shows. Given an intact script:
#   - The agent binary is downloaded from the same server. With a self-signed certificate
#     curl cannot verify it against a CA, so when a fingerprint is set:
#       * if openssl is installed, the script fetches the server certificate, checks its
#         SHA-256 fingerprint against the expected one (refusing on mismatch), and downloads
#         with `curl -k --pinnedpubkey` set to that certificate's public key, so the download
#         can only come from a server holding that certificate's private key;
#       * if the binary's hash is embedded, the download is checked against it (this needs no
#         openssl: sha256sum is enough);
#       * with neither, the download cannot be authenticated; the script warns loudly.
#         The enrollment that follows still pins the certificate inside the agent, so the
#         enrollment token and everything after it only go to the genuine server.
#   - Without a fingerprint, https URLs are verified by curl against the system CAs, and
#     http URLs are not protected at all (the script says so).
set -eu

SERVER_URL='@@SERVER_URL@@'
FINGERPRINT='@@FINGERPRINT@@'
AGENT_SHA256='@@AGENT_SHA256@@'

DEFAULT_STATE_DIR=/var/lib/capstan-agent
DEFAULT_BIN_DIR=/usr/local/bin
UNIT_PATH=/etc/systemd/system/capstan-agent.service
DROPIN_DIR=/etc/systemd/system/capstan-agent.service.d

say() {
    printf 'capstan-install: %s\n' "$*" >&2
}

die() {
    say "error: $*"
    exit 1
}

usage() {
    cat <<'EOF'
Install and enroll the Capstan agent.

  sh install.sh --token TOKEN [options]

Options:
  --token TOKEN        enrollment token (or set CAPSTAN_ENROLL_TOKEN)
  --state-dir DIR      agent state directory (default /var/lib/capstan-agent)
  --bin-dir DIR        where to install capstan-agent (default /usr/local/bin)
  --identity KIND      hardware (default) or instance (one device per state directory)
  --no-service         do not install or start the systemd service
  -h, --help           show this help
EOF
}

# The text of the systemd unit, filled in by the server.
unit_text() {
    cat <<'CAPSTAN_UNIT_EOF'
@@UNIT_FILE@@
CAPSTAN_UNIT_EOF
}

have() {
    command -v "$1" >/dev/null 2>&1
}

# Only absolute paths of plain characters: they end up unquoted in a systemd ExecStart= line,
# where spaces, quotes and '%' would change the meaning.
check_dir() {
    case $2 in
        /*) ;;
        *) die "$1 must be an absolute path, got '$2'" ;;
    esac
    case $2 in
        *[!A-Za-z0-9/._-]*) die "$1 may only contain letters, digits, '/', '.', '_' and '-': '$2'" ;;
    esac
}

lower_hex() {
    sed 's/^[Ss][Hh][Aa]256://; s/://g' | tr '[:upper:]' '[:lower:]'
}

sha256_of() {
    if have sha256sum; then
        sha256sum "$1" | cut -d ' ' -f 1
    elif have shasum; then
        shasum -a 256 "$1" | cut -d ' ' -f 1
    elif have openssl; then
        openssl dgst -sha256 -r "$1" | cut -d ' ' -f 1
    else
        return 1
    fi
}

# host:port of SERVER_URL for openssl s_client.
server_hostport() {
    rest=${SERVER_URL#https://}
    rest=${rest%%/*}
    case $rest in
        \[*\]:*) printf '%s\n' "$rest" ;;
        \[*\]) printf '%s:443\n' "$rest" ;;
        *:*) printf '%s\n' "$rest" ;;
        *) printf '%s:443\n' "$rest" ;;
    esac
}

# Check the server certificate against FINGERPRINT with openssl and print the base64 SHA-256
# of its public key for curl --pinnedpubkey. Exits the script on a mismatch.
pinned_public_key() {
    hostport=$(server_hostport)
    pem=$(openssl s_client -connect "$hostport" </dev/null 2>/dev/null | openssl x509 2>/dev/null) || pem=''
    [ -n "$pem" ] || die "cannot read the TLS certificate of $hostport with openssl"
    actual=$(printf '%s\n' "$pem" | openssl x509 -noout -fingerprint -sha256 | sed 's/^[^=]*=//' | lower_hex)
    expected=$(printf '%s\n' "$FINGERPRINT" | lower_hex)
    if [ "$actual" != "$expected" ]; then
        die "the server at $hostport presents certificate sha256:$actual, not the expected $FINGERPRINT. Refusing to continue: either someone is intercepting the connection or the server certificate changed (then fetch a fresh install command from the console)."
    fi
    spki=$(printf '%s\n' "$pem" | openssl x509 -noout -pubkey | openssl pkey -pubin -outform DER | openssl dgst -sha256 -binary | openssl base64 -A)
    [ -n "$spki" ] || die "cannot compute the public key hash of the server certificate"
    printf '%s\n' "$spki"
}

download_agent() {
    dest=$1
    url="$SERVER_URL/download/capstan-agent"
    case $SERVER_URL in
        http://*)
            say "warning: $SERVER_URL is plain HTTP; the agent binary is downloaded unprotected"
            curl -fsS --retry 3 -o "$dest" "$url" || die "download of $url failed"
            ;;
        https://*)
            if [ -z "$FINGERPRINT" ]; then
                curl -fsS --retry 3 -o "$dest" "$url" || die "download of $url failed (certificate not trusted by the system CAs? then the install command needs the server fingerprint)"
            elif have openssl; then
                # Not in a pipeline or $(): a mismatch must stop the whole script.
                pinned_public_key >"$dest.pin"
                spki=$(cat "$dest.pin")
                rm -f "$dest.pin"
                curl -fsS --retry 3 -k --pinnedpubkey "sha256//$spki" -o "$dest" "$url" || die "download of $url failed"
            else
                if [ -z "$AGENT_SHA256" ]; then
                    say "warning: openssl is not installed, so the server certificate cannot be checked before the download; the agent binary is NOT authenticated. Install openssl and re-run to be safe. (The agent itself pins the certificate for enrollment.)"
                fi
                curl -fsS --retry 3 -k -o "$dest" "$url" || die "download of $url failed"
            fi
            ;;
        *)
            die "server URL '$SERVER_URL' must start with https:// or http://"
            ;;
    esac
    [ -s "$dest" ] || die "the server sent an empty agent binary"
    if [ -n "$AGENT_SHA256" ]; then
        actual=$(sha256_of "$dest") || die "no sha256sum, shasum or openssl to verify the agent binary"
        expected=$(printf '%s\n' "$AGENT_SHA256" | lower_hex)
        [ "$actual" = "$expected" ] || die "the downloaded agent binary has SHA-256 $actual, expected $expected"
    fi
}

install_service() {
    bin=$1
    state=$2
    unit=$(unit_text)
    case $unit in
        *'[Service]'*) ;;
        *) die "this install script carries no systemd unit (server template not filled in)" ;;
    esac
    printf '%s\n' "$unit" >"$UNIT_PATH.tmp"
    chmod 0644 "$UNIT_PATH.tmp"
    mv -f "$UNIT_PATH.tmp" "$UNIT_PATH"
    if [ "$bin" != "$DEFAULT_BIN_DIR" ] || [ "$state" != "$DEFAULT_STATE_DIR" ]; then
        mkdir -p "$DROPIN_DIR"
        {
            printf '# Written by the Capstan install script: non-default directories.\n'
            printf '[Service]\nExecStart=\nExecStart=%s/capstan-agent run --state-dir %s\n' "$bin" "$state"
            if [ "$state" != "$DEFAULT_STATE_DIR" ]; then
                printf 'StateDirectory=\n'
            fi
        } >"$DROPIN_DIR/install.conf"
    else
        rm -f "$DROPIN_DIR/install.conf"
    fi
    systemctl daemon-reload
    systemctl enable capstan-agent >/dev/null 2>&1 || die "systemctl enable capstan-agent failed"
    # restart, not start: a re-install must pick up the new binary and credentials.
    systemctl restart capstan-agent || die "capstan-agent did not start; see: journalctl -u capstan-agent"
    say "capstan-agent is running. Status: systemctl status capstan-agent; logs: journalctl -u capstan-agent -f"
}

main() {
    token=${CAPSTAN_ENROLL_TOKEN:-}
    state_dir=$DEFAULT_STATE_DIR
    bin_dir=$DEFAULT_BIN_DIR
    identity=hardware
    service=yes
    while [ $# -gt 0 ]; do
        case $1 in
            --token) [ $# -ge 2 ] || die "--token needs a value"; token=$2; shift 2 ;;
            --token=*) token=${1#--token=}; shift ;;
            --state-dir) [ $# -ge 2 ] || die "--state-dir needs a value"; state_dir=$2; shift 2 ;;
            --state-dir=*) state_dir=${1#--state-dir=}; shift ;;
            --bin-dir) [ $# -ge 2 ] || die "--bin-dir needs a value"; bin_dir=$2; shift 2 ;;
            --bin-dir=*) bin_dir=${1#--bin-dir=}; shift ;;
            --identity) [ $# -ge 2 ] || die "--identity needs a value"; identity=$2; shift 2 ;;
            --identity=*) identity=${1#--identity=}; shift ;;
            --no-service) service=no; shift ;;
            -h | --help) usage; exit 0 ;;
            *) die "unknown option '$1' (see --help)" ;;
        esac
    done

    case $SERVER_URL in
        *@@*) die "this is the install script template; download the script from your Capstan server at /install.sh" ;;
    esac
    SERVER_URL=${SERVER_URL%/}
    case $FINGERPRINT in *@@*) FINGERPRINT='' ;; esac
    case $AGENT_SHA256 in *@@*) AGENT_SHA256='' ;; esac

    [ -n "$token" ] || die "an enrollment token is required: --token TOKEN (create one in the console)"
    case $identity in
        hardware | instance) ;;
        *) die "--identity must be hardware or instance, got '$identity'" ;;
    esac
    check_dir --state-dir "$state_dir"
    check_dir --bin-dir "$bin_dir"
    state_dir=${state_dir%/}
    bin_dir=${bin_dir%/}
    if [ -z "$state_dir" ] || [ -z "$bin_dir" ]; then
        die "--state-dir and --bin-dir cannot be /"
    fi

    [ "$(uname -s)" = Linux ] || die "this installer supports Linux only (found $(uname -s))"
    case $(uname -m) in
        x86_64 | amd64) ;;
        *) die "this server ships the agent for linux/x86_64 only; this machine is $(uname -m)" ;;
    esac
    have curl || die "curl is required"
    if [ "$(id -u)" != 0 ] && [ "$service" = yes ]; then
        die "run as root to install the service (… | sudo sh -s -- …), or pass --no-service with writable --bin-dir and --state-dir"
    fi

    mkdir -p "$bin_dir" || die "cannot create $bin_dir"
    tmp=$(mktemp "$bin_dir/.capstan-agent.XXXXXX") || die "cannot write to $bin_dir"
    trap 'rm -f "$tmp" "$tmp.pin"' EXIT
    trap 'exit 130' INT TERM
    say "downloading the agent from $SERVER_URL"
    download_agent "$tmp"
    chmod 0755 "$tmp"
    version=$("$tmp" --version </dev/null 2>/dev/null) || die "the downloaded file is not a working capstan-agent for this machine"
    # rename, not copy: a running agent keeps its old binary until it restarts.
    mv -f "$tmp" "$bin_dir/capstan-agent"
    say "installed $version to $bin_dir/capstan-agent"

    # The token goes through the environment: command-line arguments are visible in `ps`.
    CAPSTAN_AGENT_ENROLL_TOKEN=$token "$bin_dir/capstan-agent" enroll \
        --server "$SERVER_URL" --fingerprint "$FINGERPRINT" \
        --state-dir "$state_dir" --identity "$identity" </dev/null ||
        die "enrollment failed (see the message above)"

    if [ "$service" = no ]; then
        say "not installing a service (--no-service). Start the agent with:"
        say "  $bin_dir/capstan-agent run --state-dir $state_dir"
    elif [ -d /run/systemd/system ] && have systemctl; then
        install_service "$bin_dir" "$state_dir"
    else
        say "systemd is not running here, so no service was installed. Start the agent with:"
        say "  nohup $bin_dir/capstan-agent run --state-dir $state_dir >>/var/log/capstan-agent.log 2>&1 &"
        say "and start it at boot from your init system (an OpenRC or SysV init script, runit, or a supervisor)."
        say "Do not restart it automatically after exit status 78: that means revoked or mis-configured."
    fi
}

# Everything runs from here, so a script cut off in transfer runs nothing at all.
main "$@"
