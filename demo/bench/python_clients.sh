#!/usr/bin/env bash
# Runs demo/bench/python_clients.py: this platform's Python SDK, Celery 5 and Ray side by side.
# Builds the release binaries, and keeps Celery and Ray in a venv of their own
# (demo/bench/.venv-peers, git-ignored), never in the project's .venv. Arguments go to the
# script, e.g. `--only faas` or `--tasks 10000`.
set -euo pipefail
cd "$(dirname "$0")/../.."
./demo/setup.sh >/dev/null
peers=demo/bench/.venv-peers
if ! "$peers/bin/python" -c 'import celery, redis, ray, dill, requests' >/dev/null 2>&1; then
    echo "bench: creating $peers with Celery and Ray"
    python3 -m venv "$peers"
    "$peers/bin/pip" install --quiet --disable-pip-version-check 'celery[redis]>=5,<6' 'ray>=2' dill requests
fi
# The SDK as a user installs it (not editable: what `pip install ./demo/python` gives).
"$peers/bin/pip" install --quiet --disable-pip-version-check --force-reinstall --no-deps ./demo/python
cargo build --release --workspace --bins
exec "$peers/bin/python" demo/bench/python_clients.py --bin-dir target/release --python "$PWD/.venv/bin/python" "$@"
