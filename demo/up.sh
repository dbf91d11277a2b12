#!/usr/bin/env bash
# Starts the whole platform on this machine: installs missing prerequisites (demo/setup.sh),
# builds the release binaries, then runs `faas up` with any arguments given here
# (e.g. `demo/up.sh --mode push --workers 2 --no-console`).
set -euo pipefail
cd "$(dirname "$0")/.."
./demo/setup.sh
cargo build --release --workspace --bins
exec ./target/release/faas up "$@"
