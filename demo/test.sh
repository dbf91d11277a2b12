#!/usr/bin/env bash
# Runs the whole test suite: installs missing prerequisites, builds the binaries the
# end-to-end tests start, then runs every test in the workspace and the Python SDK's pytest
# suite (demo/python/tests). Arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
./demo/setup.sh
export FAAS_PYTHON="${FAAS_PYTHON:-$PWD/.venv/bin/python}"
cargo build --workspace --bins
cargo test --workspace "$@"
# Any non-zero pytest status fails the run, 5 ("no tests collected") included.
status=0
.venv/bin/python -m pytest demo/python/tests -q -p no:cacheprovider || status=$?
if [ "$status" -ne 0 ]; then
    echo "test: the Python SDK tests failed (pytest exit status $status)" >&2
    exit 1
fi
