#!/usr/bin/env bash
# One-time, idempotent set-up of a fresh machine: a virtual environment in .venv with the CPU build of torch
# (pinned, so pip never pulls a multi-GB CUDA build) and hf-tip installed in editable mode with its dev extra.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
stamp=.venv/.hf-tip-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ scripts/constraints.txt -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
  .venv/bin/python -m pip install -q -c scripts/constraints.txt torch==2.13.0 2>&1 | grep -v "is ignored" || true
  .venv/bin/python -m pip install -q -c scripts/constraints.txt -e ".[dev]" 2>&1 | grep -v "is ignored" || true
  .venv/bin/python -c "import torch, hf_tip; assert '+cpu' in torch.__version__ or not torch.version.cuda, torch.__version__" 
  touch "$stamp"
fi
# olah (a self-hosted Hub mirror) serves the Hub round-trip tests (tests/test_hub.py); its own venv keeps its
# dependencies out of the project's. Optional: without it those tests skip, saying why.
olah_stamp=.venv-olah/.olah-0.5.4
if [ ! -f "$olah_stamp" ]; then
  { "$PYTHON" -m venv .venv-olah \
    && .venv-olah/bin/python -m pip install -q olah==0.5.4 2>&1 | { grep -v "is ignored" || true; } \
    && .venv-olah/bin/python -c "import olah.server"; } \
    && touch "$olah_stamp" \
    || echo "scripts/setup.sh: warning: could not install olah into .venv-olah; the hub tests will be skipped" >&2
fi
