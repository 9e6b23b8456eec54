"""Checkpoints of a fine-tuning run without pickle: tensors in safetensors, everything else in JSON.

A checkpoint folder `output_dir/checkpoints/<name>/` holds
- `training_state.safetensors`: the trained parameters now (`params.<name>`), at the best epoch (`best.<name>`),
  and the optimizer's tensor state (`optimizer.<index>.<key>`: AdamW's `exp_avg`, `exp_avg_sq`, `step`; SGD's
  `momentum_buffer`);
- `trainer_state.json`: the completed steps, the per-epoch history, the losses of the running epoch, the best epoch
  and its accuracy, the run's signature (settings a resume must share), the optimizer's parameter groups and
  non-tensor state, and the scheduler's state.
It is written by the main process into a temporary folder renamed once complete, so a kill never leaves half of
one. Nothing is pickled, and a folder that holds a pickle (an Accelerate `save_state` checkpoint, a planted
`*.pkl`) is refused: resuming never runs code from a file. The rest of the run is a function of its seed (views,
order), so no random-number-generator state is needed for a bit-identical resume.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from .args import FinetuneConfig

CHECKPOINTS_DIR = "checkpoints"
STATE_FILE = "trainer_state.json"
TENSORS_FILE = "training_state.safetensors"
FORMAT_VERSION = 1
PICKLE_PATTERNS = ("*.pkl", "*.pickle", "*.bin", "*.pt", "*.pth", "random_states_*")


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed from (missing, corrupt, holding pickles, or from other settings)."""


@dataclass
class RunState:
    """The progress of a run besides the model and the optimizer: what a checkpoint restores."""

    signature: dict
    completed_steps: int = 0
    history: list[dict] = field(default_factory=list)
    epoch_losses: list[float] = field(default_factory=list)
    best_epoch: int = -1
    best_accuracy: float = -1.0
    best_params: dict[str, torch.Tensor] = field(default_factory=dict)


def trained_named_parameters(model) -> dict[str, torch.nn.Parameter]:
    """The model's trainable parameters by name (those the run trains and a checkpoint saves)."""
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


def check_no_pickles(folder: str | os.PathLike) -> None:
    """Raise a [`CheckpointError`] naming every file of `folder` that may hold pickled data."""
    found = sorted({p.name for pattern in PICKLE_PATTERNS for p in Path(folder).glob(pattern)})
    if found:
        raise CheckpointError(
            f"The checkpoint {str(folder)!r} holds files that may be pickles ({', '.join(found)}); hf-tip never loads "
            "them (a pickle can run code). Resume only from checkpoints written by this version (safetensors + JSON), "
            "or start again without `--resume_from_checkpoint`."
        )


# ----------------------------------------------------------------------------------------------------- signature
def signature(config: FinetuneConfig, model, num_examples: int, train_batch_size: int, first_view: int, views) -> dict:
    """The settings a resumed run must share with the checkpoint's."""
    return {
        "num_examples": num_examples, "train_batch_size": train_batch_size,
        "num_train_epochs": config.num_train_epochs, "seed": config.seed, "learning_rate": config.learning_rate,
        "alpha": config.alpha, "beta": config.beta,
        "augmentation": "online" if config.online_augmentation else f"bank of {views} views",
        "first_training_view": first_view, "optimizer": config.optimizer, "weight_decay": config.weight_decay,
        "adam_epsilon": config.adam_epsilon, "momentum": config.momentum, "warmup_epochs": config.warmup_epochs,
        "warmup_learning_rate": config.warmup_learning_rate, "lr_scheduler_unit": config.lr_scheduler_unit,
        "trained": sorted(trained_named_parameters(model)),
    }  # fmt: skip


# ---------------------------------------------------------------------------------------------------------- save
def _optimizer_state(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """The optimizer's state dict split into tensors (for safetensors) and the rest (for JSON)."""
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, entries in state["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{index}.{key}"] = value.detach().cpu().contiguous().clone()
            else:
                scalars.setdefault(str(index), {})[key] = value
    groups = [{k: list(v) if isinstance(v, tuple) else v for k, v in g.items()} for g in state["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def save_checkpoint(accelerator, output_dir, name: str, run: RunState, model, optimizer, scheduler) -> Path:
    """Write checkpoint `name` (main process; every process waits for it); return its folder."""
    root = Path(output_dir) / CHECKPOINTS_DIR
    final, tmp = root / name, root / f".tmp-{name}"
    if accelerator.is_main_process:
        try:
            _write_checkpoint(tmp, final, run, model, optimizer, scheduler)
        except OSError as error:  # a full disk, a quota: the previous checkpoints stay as they were
            shutil.rmtree(tmp, ignore_errors=True)
            raise CheckpointError(
                f"Could not write the checkpoint {str(final)!r} ({os.strerror(error.errno) if error.errno else error}); "
                "the earlier checkpoints are intact. Free space (or pick another --output_dir) and resume with "
                "`--resume_from_checkpoint latest`."
            ) from None
    accelerator.wait_for_everyone()
    return final


def _write_checkpoint(tmp: Path, final: Path, run: RunState, model, optimizer, scheduler) -> None:
    """Write the checkpoint into `tmp`, flushed to disk, then rename it to `final` (replacing an older one)."""
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    tensors, optimizer_json = _optimizer_state(optimizer)
    for key, param in trained_named_parameters(model).items():
        tensors[f"params.{key}"] = param.detach().cpu().contiguous().clone()
        tensors[f"best.{key}"] = run.best_params.get(key, param).detach().cpu().contiguous().clone()
    save_file(tensors, str(tmp / TENSORS_FILE))
    meta = {
        "format_version": FORMAT_VERSION, "completed_steps": run.completed_steps, "epochs": len(run.history),
        "history": run.history, "epoch_losses": run.epoch_losses, "best_epoch": run.best_epoch,
        "best_accuracy": run.best_accuracy, "signature": run.signature, "optimizer": optimizer_json,
        "scheduler": scheduler.state_dict(),
    }  # fmt: skip
    (tmp / STATE_FILE).write_text(json.dumps(meta, indent=1) + "\n")
    for name in (TENSORS_FILE, STATE_FILE):
        with open(tmp / name, "rb") as handle:
            os.fsync(handle.fileno())
    if final.exists():
        old = final.with_name(f".old-{final.name}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)


# ---------------------------------------------------------------------------------------------------------- find
def _completed_steps(folder: Path) -> float:
    """The completed steps a checkpoint states; `inf` when its JSON cannot be read (so a broken newest one is found)."""
    try:
        return float(json.loads((folder / STATE_FILE).read_text())["completed_steps"])
    except (OSError, ValueError, KeyError, TypeError):
        return math.inf


def _checkpoints(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]


def find_checkpoint(output_dir: str | os.PathLike | None, resume_from_checkpoint: str) -> Path:
    """The checkpoint folder to resume from: `resume_from_checkpoint` itself, or with `"latest"` the checkpoint in
    `output_dir/checkpoints` with the most completed steps."""
    if resume_from_checkpoint != "latest":
        path = Path(resume_from_checkpoint)
        if not path.is_dir() or not ((path / STATE_FILE).exists() or (path / TENSORS_FILE).exists()):
            raise CheckpointError(
                f"`resume_from_checkpoint` {str(path)!r} is not a checkpoint folder (no {STATE_FILE})."
            )
        return path
    root = Path(output_dir) / CHECKPOINTS_DIR
    found = _checkpoints(root)
    if not found:
        raise CheckpointError(f"`resume_from_checkpoint latest`: no checkpoint in {str(root)!r}.")
    return max(found, key=lambda p: (_completed_steps(p), p.stat().st_mtime))


def _previous_checkpoint(path: Path) -> Path | None:
    """The readable sibling of `path` with the most completed steps below its own (None if there is none)."""
    steps = _completed_steps(path)
    candidates = []
    for other in _checkpoints(path.parent):
        other_steps = _completed_steps(other)
        if other == path or not other_steps < steps or math.isinf(other_steps):
            continue
        try:
            with safe_open(str(other / TENSORS_FILE), framework="pt"):
                candidates.append((other_steps, other))
        except Exception:  # noqa: BLE001 - a broken header: not offered
            continue
    return max(candidates)[1] if candidates else None


# ---------------------------------------------------------------------------------------------------------- load
def load_checkpoint(path: str | os.PathLike) -> tuple[dict, dict[str, torch.Tensor]]:
    """The JSON state and the tensors of a checkpoint, after refusing pickles; a [`CheckpointError`] naming the
    folder (and offering the previous checkpoint) when a file is missing, truncated or not valid."""
    path = Path(path)
    check_no_pickles(path)
    try:
        meta = json.loads((path / STATE_FILE).read_text())
        if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{STATE_FILE} is not a format-{FORMAT_VERSION} hf-tip training state")
        tensors = load_file(str(path / TENSORS_FILE))
    except Exception as error:  # noqa: BLE001 - any unreadable file means the same to the user
        previous = _previous_checkpoint(path)
        offer = (
            f"Resume from the previous one: `--resume_from_checkpoint {previous}`."
            if previous is not None
            else "No earlier checkpoint is readable: start again without `--resume_from_checkpoint`."
        )
        raise CheckpointError(
            f"The checkpoint {str(path)!r} is corrupt or incomplete ({type(error).__name__}: {error}). {offer}"
        ) from error
    return meta, tensors


def restore(meta: dict, tensors: dict[str, torch.Tensor], run: RunState, model, optimizer, scheduler) -> None:
    """Put a loaded checkpoint's state into the run, the model's trained parameters, the optimizer and scheduler."""
    if meta["signature"] != run.signature:
        changed = {k: (v, run.signature.get(k)) for k, v in meta["signature"].items() if run.signature.get(k) != v}
        raise CheckpointError(
            f"The checkpoint comes from a run with other settings (setting: (checkpoint, now)): {changed}. Resume "
            "with the same arguments and number of processes x batch size."
        )
    params = trained_named_parameters(model)
    missing = sorted(f"params.{k}" for k in params if f"params.{k}" not in tensors or f"best.{k}" not in tensors)
    if missing:
        raise CheckpointError(f"The checkpoint lacks the trained tensors {missing}.")
    for key, param in params.items():  # copy_ would broadcast a [1,D] tensor into [12,D] keys
        for prefix in ("params", "best"):
            saved = tensors[f"{prefix}.{key}"]
            if tuple(saved.shape) != tuple(param.shape):
                raise CheckpointError(
                    f"The checkpoint's `{prefix}.{key}` has shape {tuple(saved.shape)}, but the model's `{key}` has "
                    f"shape {tuple(param.shape)}; it comes from another model (or was edited). Resume with the model "
                    "it was written for, or start again without `--resume_from_checkpoint`."
                )
            if saved.is_floating_point() and not bool(torch.isfinite(saved).all()):
                raise CheckpointError(
                    f"The checkpoint's `{prefix}.{key}` holds NaN or inf values: the run it comes from diverged (or "
                    "the file was edited). Resume from an earlier checkpoint, or start again with a smaller learning "
                    "rate."
                )
    with torch.no_grad():
        for key, param in params.items():
            param.copy_(tensors[f"params.{key}"].to(param))
    run.best_params = {key: tensors[f"best.{key}"].to(param) for key, param in params.items()}
    run.completed_steps, run.history = meta["completed_steps"], list(meta["history"])
    run.epoch_losses, run.best_epoch, run.best_accuracy = (
        list(meta["epoch_losses"]),
        meta["best_epoch"],
        meta["best_accuracy"],
    )
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    for index, scalars in meta["optimizer"]["scalars"].items():
        state.setdefault(int(index), {}).update(scalars)
    groups = [{k: tuple(v) if k == "betas" else v for k, v in g.items()} for g in meta["optimizer"]["param_groups"]]
    optimizer.load_state_dict({"state": state, "param_groups": groups})
    scheduler.load_state_dict(meta["scheduler"])


__all__ = [
    "CHECKPOINTS_DIR",
    "STATE_FILE",
    "TENSORS_FILE",
    "CheckpointError",
    "RunState",
    "check_no_pickles",
    "find_checkpoint",
    "load_checkpoint",
    "restore",
    "save_checkpoint",
    "signature",
    "trained_named_parameters",
]
