#!/usr/bin/env bash
# Installs what the platform and its tests need and are missing on a Debian/Ubuntu machine with
# Rust: redis-server, tmux, bubblewrap (bwrap sandboxes the Python children) and iproute2 (the
# cross-namespace worker test) with apt, and a project-local Python venv (.venv) with dill,
# requests and pytest, and the Python SDK (demo/python, editable). Safe to run again: it only
# installs what is missing, and says what it did.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo_if_needed() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
# `ip netns` and veth pairs, for the cross-namespace worker test.
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing with apt-get: ${missing[*]}"
    sudo_if_needed apt-get update -qq
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! .venv/bin/python -c 'import dill, requests, pytest, openapi_spec_validator, schemathesis' >/dev/null 2>&1; then
    echo "setup: creating .venv with dill, requests, pytest, openapi-spec-validator and schemathesis (the Python the workers, examples and SDK tests use)"
    python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check -r demo/requirements.txt
fi
if ! .venv/bin/python -c 'import sys, faas_client; sys.exit(not faas_client.__file__.startswith(sys.argv[1]))' \
    "$PWD/demo/python/" >/dev/null 2>&1; then
    echo "setup: installing the Python SDK faas-client from demo/python into .venv (editable)"
    .venv/bin/pip install --quiet --disable-pip-version-check -e ./demo/python
fi
echo "setup: ready (redis-server: $(command -v redis-server), python: $PWD/.venv/bin/python)"
