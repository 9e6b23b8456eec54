"""The `hf-tip` command: `hf-tip build | evaluate | demo | push | finetune | update | app` (`hf_tip/commands/`).
Tip-Adapter-F runs as `accelerate launch examples/finetune.py` (single or multi-process), over `hf_tip.training.finetune`."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

COMMANDS = {
    "build": "Build a training-free Tip-Adapter from a dataset: sample, cache, search alpha/beta, evaluate, save.",
    "evaluate": "Evaluate a saved Tip-Adapter (folder or Hub id) on a dataset split.",
    "demo": "Few-shot textile-defect classification demo: zero-shot CLIP vs Tip-Adapter.",
    "push": "Push a saved Tip-Adapter folder to the Hugging Face Hub with its model card.",
    "finetune": "Fine-tune a Tip-Adapter's cache keys (Tip-Adapter-F) with Accelerate; see `hf-tip finetune --help`.",
    "compare": "Compare every method (zero-shot, linear probe, CLIP-Adapter, Tip-Adapter(-F), TIP-X, GDA) on the same data.",
    "update": "Add examples and classes from an image folder to a saved Tip-Adapter, without a rebuild.",
    "app": "Serve an interactive page (Gradio): classify, see the cache examples behind it, add examples live.",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hf-tip", description="Tip-Adapter: training-free few-shot CLIP.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="{" + ",".join(COMMANDS) + "}")
    for name, help_text in COMMANDS.items():
        try:
            module = importlib.import_module(f"hf_tip.commands.{name}")
        except ModuleNotFoundError as error:  # a command not written yet must not break the others
            if error.name != f"hf_tip.commands.{name}":
                raise
            continue
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(sub)
        sub.set_defaults(func=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # the command as typed, for model cards
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
