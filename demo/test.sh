#!/usr/bin/env bash
# Runs the whole test suite: installs missing prerequisites, builds the binaries the
# end-to-end tests start, then runs every test in the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
./demo/setup.sh
export FAAS_PYTHON="${FAAS_PYTHON:-$PWD/.venv/bin/python}"
cargo build --workspace --bins
cargo test --workspace "$@"
