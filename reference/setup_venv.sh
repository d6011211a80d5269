#!/usr/bin/env bash
# Create (or reuse) reference/.venv with the pinned reference frameworks
# (PyTorch, TensorFlow) used by bench/python/*.py.
#
# Idempotent: the install is skipped when reference/.venv/.requirements.sha256
# matches the sha256 of reference/requirements.txt + requirements-nodeps.txt.
# Override the interpreter used to create the venv with PYTHON=/path/to/python3.
# Prints the path of the venv's python as the last line of stdout.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=reference/.venv
REQ=reference/requirements.txt
NODEPS=reference/requirements-nodeps.txt
STAMP="$VENV/.requirements.sha256"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
    echo "creating $VENV with $("$PYTHON" -c 'import sys; print(sys.executable, sys.version.split()[0])')" >&2
    "$PYTHON" -m venv "$VENV"
fi

want="$(cat "$REQ" "$NODEPS" | sha256sum | cut -d' ' -f1)"
have="$(cat "$STAMP" 2>/dev/null || true)"
if [ "$want" != "$have" ]; then
    echo "installing $REQ into $VENV (this downloads several GB the first time)" >&2
    "$VENV/bin/python" -m pip install -q -r "$REQ" >&2
    "$VENV/bin/python" -m pip install -q --no-deps -r "$NODEPS" >&2
    echo "$want" > "$STAMP"
else
    echo "$VENV is up to date with $REQ" >&2
fi

echo "$(pwd)/$VENV/bin/python"
