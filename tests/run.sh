#!/usr/bin/env bash
# Runs every test wren has, installing what they need first. Needs root: the kernel and
# interop tests create network namespaces, and the real BGP peers come from Debian packages.
#
#   sudo bash tests/run.sh                          # everything, about 10 minutes
#   sudo bash tests/run.sh --fuzz-seconds 600       # fuzz each target longer
#   sudo FUZZ_SECONDS=600 bash tests/run.sh         # the same (sudo drops variables set before it)
#
# It finds the Rust toolchain of the user who ran sudo and gives every file it creates in the
# checkout back to the checkout's owner at the end (tests/cargo.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS=${FUZZ_SECONDS:-60}
while [ "$#" -gt 0 ]; do
    case "$1" in
        --fuzz-seconds) FUZZ_SECONDS=${2:?--fuzz-seconds needs a number}; shift 2 ;;
        --fuzz-seconds=*) FUZZ_SECONDS=${1#*=}; shift ;;
        *) echo "usage: sudo bash tests/run.sh [--fuzz-seconds N]" >&2; exit 2 ;;
    esac
done
case "$FUZZ_SECONDS" in
    '' | *[!0-9]*) echo "FUZZ_SECONDS must be a number of seconds, not '$FUZZ_SECONDS'" >&2; exit 2 ;;
esac
step() { printf '\n==> %s\n' "$*"; }

if [ "$(id -u)" != 0 ]; then
    echo "tests/run.sh needs root (network namespaces, kernel routes, Debian packages): sudo bash tests/run.sh" >&2
    exit 1
fi

# shellcheck source=tests/cargo.sh
source tests/cargo.sh
log=$(mktemp)
trap 'rm -f "$log"; wren_give_back' EXIT

step "real BGP peers (BIRD 1.6 and 2, GoBGP, FRR, OpenBGPD) and iproute2"
bash tests/peers/install.sh

step "toolchains"
wren_toolchain
if ! command -v rustup >/dev/null; then
    echo "rustup not found: the fuzz targets need its nightly toolchain; install Rust with rustup (https://rustup.rs)" >&2
    exit 1
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true
if ! rustup toolchain list | grep -q '^nightly'; then
    rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz
fi

step "format and lints"
cargo fmt --all --check
cargo clippy --all-targets -- -D warnings

step "unit, property, vector, loopback, kernel and interop tests"
cargo test --no-fail-fast 2>&1 | tee "$log"
read -r passed failed < <(awk '/^test result:/ {
    for (i = 1; i < NF; i++) { if ($(i+1) == "passed;") p += $i; if ($(i+1) == "failed;") f += $i }
} END { print p + 0, f + 0 }' "$log")

step "fuzzing (${FUZZ_SECONDS}s per target)"
bash fuzz/run.sh "$FUZZ_SECONDS"

# The totals of every cargo test binary, last, so the closing line counts all of them.
echo "tests: ${passed} passed, ${failed} failed"
