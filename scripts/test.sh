#!/bin/sh
# Capstan's one test command: installs the system packages the tests need (when run as root on
# Debian/Ubuntu), then checks formatting and lints, builds every binary and runs every test —
# unit, storage (SQLite and a throwaway PostgreSQL the harness starts), API, CLI snapshots and
# end-to-end tests with real server and agent processes and real dpkg packages, and package
# metadata parsing of .deb and .rpm files built here with dpkg-deb and rpmbuild; and the web
# console's type, component and browser (Chromium) tests.
#
#   ./scripts/test.sh
#
# Environment: CARGO_TARGET_DIR (default: ~/.cache/capstan/target, kept between runs so a warm
# run is fast; a cold run works too), CAPSTAN_TEST_DATABASE_URL (use an existing PostgreSQL
# instead of a throwaway one).
set -eu
cd "$(dirname "$0")/.."

say() { printf '==> %s\n' "$*"; }

need_pkgs=""
have() { command -v "$1" >/dev/null 2>&1; }
have dpkg-deb || need_pkgs="$need_pkgs dpkg-dev"
have dpkg-scanpackages || need_pkgs="$need_pkgs dpkg-dev"
have pacman || need_pkgs="$need_pkgs pacman-package-manager"
have rpmbuild || need_pkgs="$need_pkgs rpm"
have xz || need_pkgs="$need_pkgs xz-utils"
have zstd || need_pkgs="$need_pkgs zstd"
have curl || need_pkgs="$need_pkgs curl"
have wixl || need_pkgs="$need_pkgs wixl"
have bsdtar || need_pkgs="$need_pkgs libarchive-tools"
have nginx || need_pkgs="$need_pkgs nginx"
have gzip || need_pkgs="$need_pkgs gzip"
have sha256sum || need_pkgs="$need_pkgs coreutils"
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_pkgs="$need_pkgs postgresql"
have node || need_pkgs="$need_pkgs nodejs"
have npm || need_pkgs="$need_pkgs npm"
[ -x /usr/bin/chromium ] || need_pkgs="$need_pkgs chromium"
have unshare || need_pkgs="$need_pkgs util-linux"
if [ -n "$need_pkgs" ]; then
    if [ "$(id -u)" = 0 ] && have apt-get; then
        say "installing system packages:$need_pkgs"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        # shellcheck disable=SC2086 # word splitting of the package list is intended
        apt-get install -y -qq --no-install-recommends $need_pkgs >/dev/null
    else
        echo "missing system packages:$need_pkgs — install them (as root: apt-get install$need_pkgs)" >&2
        exit 1
    fi
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/capstan/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# Incremental compilation data grows by gigabytes per build and gains nothing for one-off test
# builds.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"

# The web console: generated API types up to date, types, component tests, then the build that
# capstan-server embeds (the server's console tests read it). Vite 8 needs Node.js 20.19+.
node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' || {
    echo "the web console needs Node.js 20.19 or newer (found $(node --version))" >&2
    exit 1
}
say "web: npm ci, check:api, typecheck, vitest, build"
(
    cd web
    npm ci --no-audit --no-fund --loglevel=error
    npm run --silent check:api
    npm run --silent typecheck
    npx vitest run
    npm run --silent build
)

say "cargo fmt --check"
cargo fmt --all -- --check

say "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

say "building every binary (the end-to-end tests run them)"
cargo build --workspace --bins --locked

say "web: browser end-to-end tests (Chromium, real server and agents)"
(cd web && CAPSTAN_BIN_DIR="$CARGO_TARGET_DIR/debug" npm run --silent e2e)

say "running every test"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --locked --no-fail-fast
else
    cargo test --workspace --locked --no-fail-fast
fi
say "running the API suite again on PostgreSQL"
# The API tests run on SQLite above; the same requests on PostgreSQL catch backend-specific
# failures (e.g. text PostgreSQL cannot store).
if cargo nextest --version >/dev/null 2>&1; then
    CAPSTAN_API_TEST_DB=postgres cargo nextest run -p capstan-server --test api --test jobs_api --test depot_api --test packages_api --test deploy_api --test devices_api --test console_data_api --locked --no-fail-fast
else
    CAPSTAN_API_TEST_DB=postgres cargo test -p capstan-server --test api --test jobs_api --test depot_api --test packages_api --test deploy_api --test devices_api --test console_data_api --locked --no-fail-fast
fi
say "all tests passed"
