#!/usr/bin/env bash
# cargo as root with the Rust toolchain of the user who ran sudo, for the commands that need
# root (tests in network namespaces, benchmarks writing kernel routes):
#
#   sudo bash tests/cargo.sh bench --bench convergence
#
# tests/run.sh sources it. Two things stand in the way of a plain `sudo cargo`:
#
# - sudo resets PATH to its secure_path (no ~/.cargo/bin) and HOME to /root, so neither cargo
#   nor rustup's toolchains are found. The toolchain is looked for in $CARGO_HOME/bin, the
#   invoking user's ~/.cargo/bin ($SUDO_USER), root's, then on PATH; CARGO_HOME and
#   RUSTUP_HOME are set to the homes that toolchain lives in.
# - Whatever root builds or downloads would stay root's and break the user's next
#   `cargo build` (target/, fuzz/, the registry cache). On exit, every root-owned file in the
#   checkout goes back to the checkout's owner, and in the toolchain homes to theirs. The
#   build stays shared with the user's: no second target directory, no rebuild.

# Puts cargo and rustup on PATH and exports CARGO_HOME and RUSTUP_HOME; says what it found.
# The caller runs wren_give_back on exit.
wren_toolchain() {
    local dirs=() d user_home
    [ -n "${CARGO_HOME:-}" ] && dirs+=("$CARGO_HOME/bin")
    if [ -n "${SUDO_USER:-}" ] && user_home=$(getent passwd "$SUDO_USER" | cut -d: -f6); then
        dirs+=("$user_home/.cargo/bin")
    fi
    dirs+=("$HOME/.cargo/bin" /root/.cargo/bin)
    if d=$(command -v cargo); then
        dirs+=("$(dirname "$d")")
    fi
    for d in "${dirs[@]}"; do
        [ -x "$d/cargo" ] || continue
        PATH="$d:$PATH"
        if [ -x "$d/rustup" ]; then
            # A rustup install: its homes sit side by side unless set otherwise.
            export CARGO_HOME=${CARGO_HOME:-$(dirname "$d")}
            if [ -z "${RUSTUP_HOME:-}" ] && [ -d "$(dirname "$CARGO_HOME")/.rustup" ]; then
                export RUSTUP_HOME="$(dirname "$CARGO_HOME")/.rustup"
            fi
        fi
        export PATH
        echo "cargo: $d/cargo (CARGO_HOME=${CARGO_HOME:-unset}, RUSTUP_HOME=${RUSTUP_HOME:-unset})"
        return 0
    done
    echo "no cargo found (looked in: ${dirs[*]}); install Rust with rustup (https://rustup.rs) first" >&2
    return 1
}

# Gives root-owned files back: in the checkout to its owner, in the toolchain homes to theirs.
wren_give_back() {
    local dir owner
    for dir in "$WREN_ROOT" "${CARGO_HOME:-}" "${RUSTUP_HOME:-}"; do
        [ -n "$dir" ] && [ -d "$dir" ] || continue
        owner=$(stat -c %u:%g "$dir")
        [ "$owner" = 0:0 ] && continue
        find "$dir" -xdev -user 0 -exec chown -h "$owner" {} + 2>/dev/null || true
    done
}

WREN_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    cd "$WREN_ROOT"
    wren_toolchain >&2
    trap wren_give_back EXIT
    cargo "$@"
fi
