#!/usr/bin/env bash
# Set up a virtualenv and run the RAG quick start (cookbook/quickstart.py): the real service
# when DASHSCOPE_API_KEY is set, the bundled emulator otherwise. Another cookbook script runs
# when its name comes first: bash scripts/quickstart.sh image_search [its arguments]
# Only the extras the script declares in its PEP 723 block (# /// script) are installed;
# scripts/test.sh installs them all.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
script=quickstart
if [ $# -gt 0 ] && [[ "$1" != -* ]]; then
    if [[ ! "$1" =~ ^[A-Za-z0-9_]+$ ]] || [ ! -f "cookbook/$1.py" ]; then
        available=$(cd cookbook && for f in *.py; do printf ' %s' "${f%.py}"; done)
        echo "quickstart.sh: no cookbook script named '$1'; available:$available" >&2
        echo "usage: bash scripts/quickstart.sh [NAME] [script arguments...]" >&2
        exit 2
    fi
    script="$1"
    shift
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -U "pip>=25.1"
extras="$(.venv/bin/python scripts/_script_extras.py "cookbook/$script.py")"
echo "quickstart.sh: installing -e \".${extras:+[$extras]}\" for cookbook/$script.py" >&2
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".${extras:+[$extras]}"
exec .venv/bin/python "cookbook/$script.py" "$@"
