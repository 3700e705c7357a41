#!/usr/bin/env bash
# Set up a virtualenv and run the RAG quick start: the real service when DASHSCOPE_API_KEY is
# set, the bundled emulator otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -U "pip>=25.1"
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[all]"
exec .venv/bin/python cookbook/quickstart.py "$@"
