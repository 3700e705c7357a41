#!/usr/bin/env bash
# Set up a virtualenv with every extra and the test tools, then run the whole test suite.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -U "pip>=25.1"
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[all]" --group test
exec .venv/bin/python -m pytest "$@"
