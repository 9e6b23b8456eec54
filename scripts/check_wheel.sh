#!/usr/bin/env bash
# Build the wheel and install it, with its `demo` extra, into a clean venv outside the checkout; then run the demo
# there. What a user of `pip install "hf-tip[demo]"` gets (torch pinned to this machine's CPU wheel, as in setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PYTHON" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q --upgrade pip
"$work/venv/bin/python" -m pip wheel -q --no-deps -w "$work/dist" .
wheel=$(ls "$work"/dist/hf_tip-*.whl)
"$work/venv/bin/python" -m pip install -q -c scripts/constraints.txt torch==2.13.0
"$work/venv/bin/python" -m pip install -q -c scripts/constraints.txt "$wheel[demo]"
cd "$work"
"$work/venv/bin/hf-tip" demo --output_dir "$work/demo" --max_eval_samples 30 --augment_epochs 1
"$work/venv/bin/python" -c "import hf_tip, sys; assert hf_tip.__file__.startswith('$work'); print('installed wheel OK:', hf_tip.__file__)"
