#!/usr/bin/env bash
# Set up a virtualenv and run the RAG quick start (cookbook/quickstart.py): the real service
# when DASHSCOPE_API_KEY is set, the bundled emulator otherwise. Another cookbook script runs
# when its name comes first: bash scripts/quickstart.sh image_search
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
script=quickstart
if [ $# -gt 0 ] && [ -f "cookbook/$1.py" ]; then
    script="$1"
    shift
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -U "pip>=25.1"
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[all]"
exec .venv/bin/python "cookbook/$script.py" "$@"
