"""What the `hf-tip` commands share: the output-folder check, the device, the results table and file, the push."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..pipeline.procedure import TrainingFreeResult
from .output_dir import check_output_dir


def resolve_device(name: str | None) -> torch.device:
    """The `--device` asked for, else the first CUDA device when there is one, else the CPU."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(name)
    except RuntimeError as error:
        raise ValueError(f"--device {name!r} is not a device torch knows: {error}") from error


def write_results(path: Path, results: dict) -> Path:
    """Write `results.json` into the output folder."""
    path.mkdir(parents=True, exist_ok=True)
    target = path / "results.json"
    target.write_text(json.dumps(results, indent=2) + "\n")
    return target


def format_results(result: TrainingFreeResult) -> str:
    """A small text table: zero-shot CLIP vs the adapter on validation and test, and the searched values."""
    rows = [f"{'split':<12}{'images':>8}{'zero-shot CLIP':>17}{'Tip-Adapter':>14}"]
    for split, scores in (("validation", result.validation), ("test", result.test)):
        if scores is not None:
            rows.append(
                f"{split:<12}{scores.num_samples:>8}{100 * scores.zero_shot_accuracy:>16.2f}%"
                f"{100 * scores.adapter_accuracy:>13.2f}%"
            )
    values = ", ".join(f"{k}={v:.4g}" for k, v in result.hyperparameters.items())
    rows.append(
        f"{values} (searched on validation); cache: {result.cache_size} keys = {result.num_shots} shots x "
        f"{result.num_classes} classes, {result.augment_epochs} augmented views each"
    )
    return "\n".join(rows)


def saved_message(output_dir: Path) -> str:
    """Where the model went and how to use it."""
    return (
        f"Saved to {output_dir} (results.json inside). Use it with:\n"
        f"  pipeline('image-classification', model={str(output_dir)!r}, trust_remote_code=True)"
    )


def push(output_dir: Path, hub_model_id: str | None, token: str | None = None) -> str:
    """Push the saved folder to `hub_model_id` (default: the output folder's name, in the logged-in user's
    namespace) by `hf_tip.hub.push.push_folder`; returns the repo id."""
    from ..hub import push as hub

    commit = hub.push_folder(output_dir, hub_model_id or output_dir.resolve().name, token=token)
    return commit.repo_url.repo_id


__all__ = ["check_output_dir", "format_results", "push", "resolve_device", "saved_message", "write_results"]
