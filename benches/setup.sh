#!/usr/bin/env bash
# Creates (or reuses) the Python baseline virtualenv at benches/.venv and installs the pinned
# packages from benches/requirements.txt. Idempotent: rerunning only installs what is missing.
# Prints the venv's python path on the last line of stdout.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
req="$here/requirements.txt"
py="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
    "$py" -m venv "$venv" >&2
fi

# Skip pip entirely when every pinned requirement is already satisfied.
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" >&2
    echo "$want" > "$stamp"
fi

echo "$venv/bin/python"
