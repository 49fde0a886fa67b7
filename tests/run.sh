#!/usr/bin/env bash
# Runs every test wren has, installing what they need first. Needs root: the kernel and
# interop tests create network namespaces, and the real BGP peers come from Debian packages.
#
#   sudo bash tests/run.sh                 # everything
#   FUZZ_SECONDS=600 sudo bash tests/run.sh   # fuzz each target longer
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS=${FUZZ_SECONDS:-60}
step() { printf '\n==> %s\n' "$*"; }

if [ "$(id -u)" != 0 ]; then
    echo "tests/run.sh needs root (network namespaces, kernel routes, Debian packages): sudo bash tests/run.sh" >&2
    exit 1
fi

step "real BGP peers (BIRD 1.6 and 2, GoBGP, FRR, OpenBGPD) and iproute2"
bash tests/peers/install.sh

step "toolchains"
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
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test 2>&1 | tee "$log"
read -r passed failed < <(awk '/^test result:/ {
    for (i = 1; i < NF; i++) { if ($(i+1) == "passed;") p += $i; if ($(i+1) == "failed;") f += $i }
} END { print p + 0, f + 0 }' "$log")

step "fuzzing (${FUZZ_SECONDS}s per target)"
bash fuzz/run.sh "$FUZZ_SECONDS"

# The totals of every cargo test binary, last, so the closing line counts all of them.
echo "tests: ${passed} passed, ${failed} failed"
