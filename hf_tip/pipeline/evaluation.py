"""Evaluation with `evaluate`, through the accuracy module shipped in `hf_tip/metrics` (works offline)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import evaluate
import torch

METRICS_DIR = Path(__file__).parents[1] / "metrics"
# The seed of every evaluation subsample (`--max_eval_samples`): build, compare, evaluate and fine-tuning score the
# same validation / test rows whatever the run's few-shot `--seed`.
EVAL_SUBSAMPLE_SEED = 0


@cache
def load_accuracy() -> evaluate.EvaluationModule:
    """`evaluate.load` of the packaged accuracy module, by path (no Hub access needed)."""
    return evaluate.load(str(METRICS_DIR / "accuracy.py"))


def compute_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Accuracy in [0, 1] of logits [N,C] (argmax) against labels [N]."""
    predictions = logits.argmax(-1).tolist()
    return load_accuracy().compute(predictions=predictions, references=labels.tolist())["accuracy"]
