#!/usr/bin/env bash
# Runs every test wren has, installing what they need first.
#   bash tests/run.sh            # everything (as root: installs missing packages)
#   FUZZ_SECONDS=300 bash tests/run.sh   # fuzz each target longer
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS=${FUZZ_SECONDS:-60}

step() { printf '\n==> %s\n' "$*"; }

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

step "unit, property and vector tests"
cargo test --all-targets

step "fuzzing (${FUZZ_SECONDS}s per target)"
bash fuzz/run.sh "$FUZZ_SECONDS"
