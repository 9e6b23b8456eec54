#!/usr/bin/env bash
# One-time, idempotent set-up of a fresh machine: a virtual environment in .venv with torch 2.13.0 and hf-tip
# installed in editable mode with its dev extra, plus olah (a local Hub server for the tests) in .venv-olah.
#
# torch is pinned (scripts/constraints.txt): this project's machines carry the CPU wheel of torch 2.13.0 on disk and
# pip takes it; an unpinned torch would pull a multi-GB CUDA build. On another Linux machine PyPI's torch==2.13.0 is
# a CUDA build: install the build you want into .venv first (e.g. the CPU one from PyTorch's own index); it is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
export PIP_DISABLE_PIP_VERSION_CHECK=1

# pip, quiet, without this machine's "location ignored" chatter, and failing loudly when pip fails
pip_install() {
  local venv=$1 log status=0
  shift
  log=$(mktemp)
  "$venv/bin/python" -m pip install -q "$@" >"$log" 2>&1 || status=$?
  grep -v "is ignored" "$log" >&2 || true
  rm -f "$log"
  return "$status"
}

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.hf-tip-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ scripts/constraints.txt -nt "$stamp" ]; then
  pip_install .venv --upgrade pip
  pip_install .venv -c scripts/constraints.txt torch==2.13.0
  pip_install .venv -c scripts/constraints.txt -e ".[dev]"
  .venv/bin/python -c "import torch, hf_tip"
  touch "$stamp"
fi

# Debian's chromium drives the app's browser tests (tests/test_app.py, marker browser) through playwright; playwright's
# own browser download cannot run here, so never `playwright install`. Elsewhere those tests skip (fail under CI).
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
      || echo "scripts/setup.sh: warning: could not install chromium; browser tests will skip (fail under CI)" >&2
  else
    echo "scripts/setup.sh: note: chromium missing and not root with apt; browser tests will skip (fail under CI)" >&2
  fi
fi

# olah serves the Hub round-trip tests (tests/test_hub.py); its own venv keeps its dependencies out of the project's.
olah_stamp=.venv-olah/.olah-0.5.4
if [ ! -f "$olah_stamp" ]; then
  if { [ -x .venv-olah/bin/python ] || "$PYTHON" -m venv .venv-olah; } \
    && pip_install .venv-olah olah==0.5.4 \
    && .venv-olah/bin/python -c "import olah.server"; then
    touch "$olah_stamp"
  else
    echo "scripts/setup.sh: warning: could not install olah into .venv-olah; tests/test_hub.py will skip (fail under CI)" >&2
  fi
fi
