"""Fine-tuning a trained head with Accelerate: the loop ([`train_epoch`]) and the run ([`finetune`]).

The loop trains `[p for p in model.parameters() if p.requires_grad]` on `model(image_embeds=feats, labels=y).loss`:
the model decides what trains (Tip-Adapter-F: `enable_key_finetuning()`, only the cache keys `F` [NK,D]; other
heads: `enable_training()`), the recipe comes from [`FinetuneConfig`] (`training_args.py`, Tip-Adapter-F's by
default: AdamW eps 1e-4, cosine over epochs x iterations). The best epoch is chosen on the validation split, α/β
are searched again on it (Tip-Adapter), and the test split (if any) is read once, at the end.

Rooms: `training_args.py` (the hyper-parameters), `training_checks.py` (dataset and output folder),
`training_views.py` (few-shot set, feature bank / online views, split encoding), `training_optim.py` (optimizer
and schedule), `training_checkpoints.py` (run state in safetensors + JSON, no pickle).

Two ways to draw the augmented views of an epoch: a **feature bank** (default) of `V = num_augmented_views` views
of every image encoded once, epoch `e` training on view `E + (e % V)`; or **online** (`online_augmentation=True`),
re-encoding view `E + e` of each batch at every step, as the paper's loop does. Views `0..E-1` (`E` = the model's
`augment_epochs`) are those averaged into the cache keys, so training starts at view `E`. Every process takes a
contiguous slice of each global batch and the gradients are summed, so 1 and N processes follow the same trajectory.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.logging import get_logger
from PIL import Image
from tqdm.auto import tqdm

from ..hub.redact import redact_text
from .args import FinetuneConfig
from .checkpoints import RunState, find_checkpoint, restore, save_checkpoint, trained_named_parameters
from .checks import check_dataset, check_output_dir
from .optim import create_optimizer_and_scheduler, trainable_parameters
from .results import accuracy, build_training_free, final_results, model_accuracy
from .setup import enable_training, prepare, signature
from .views import encode_split, encode_view_bank, encode_views, epoch_order, sample_training_set, shard

logger = get_logger(__name__)
RESULTS_FILE = "all_results.json"


def train_epoch(
    accelerator: Accelerator,
    model,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    labels: torch.Tensor,
    epoch: int,
    *,
    train_batch_size: int,
    seed: int = 1,
    feature_bank: torch.Tensor | None = None,
    images: Sequence[Image.Image] | None = None,
    encode_batch_size: int = 64,
    skip_steps: int = 0,
    on_step: Callable[[float], None] | None = None,
    first_view: int = 0,
) -> float:
    r"""
    One epoch over the few-shot set, on precomputed views or re-encoding them; trains the model's trainable
    parameters on `model(image_embeds=..., labels=...).loss`.

    Args:
        accelerator ([`~accelerate.Accelerator`]): the run's accelerator (its processes split every batch).
        model: with its trained parameters enabled (`enable_key_finetuning()` / `enable_training()`).
        optimizer, scheduler: from [`create_optimizer_and_scheduler`]; both step once per step.
        labels (`torch.LongTensor` of shape `[N]`): the class of each few-shot example.
        epoch (`int`): fixes the order and the view: the bank's `epoch % V`-th, or view `first_view + epoch` online.
        train_batch_size (`int`): the GLOBAL batch size; each process takes a contiguous slice of every batch.
        feature_bank (`torch.FloatTensor` of shape `[V, N, D]`, *optional*): from [`encode_view_bank`] (fast path).
        images (`list[PIL.Image.Image]`, *optional*): re-encoded at each step (online). Pass exactly one of the two.
        skip_steps (`int`, *optional*, defaults to `0`): steps of this epoch already done (when resuming).
        on_step (`Callable[[float], None]`, *optional*): called with the global batch's loss after every step.
        first_view (`int`, *optional*, defaults to `0`): the first training view (the cache's `augment_epochs`).

    Returns:
        `float`: the mean over the steps run of the global batch's cross-entropy (`nan` if none ran).
    """
    if (feature_bank is None) == (images is None):
        raise ValueError("Pass exactly one of `feature_bank` (fast path) and `images` (online augmentation).")
    params = trainable_parameters(model)
    order = epoch_order(len(labels), seed, epoch)
    labels = labels.to(accelerator.device)
    losses = []
    for step, start in enumerate(range(0, len(order), train_batch_size)):
        if step < skip_steps:
            continue
        batch = order[start : start + train_batch_size]
        local = shard(accelerator, batch)
        loss = params[0].new_zeros((), dtype=torch.float32)
        if local:
            if feature_bank is not None:
                feats = feature_bank[epoch % feature_bank.shape[0], local]
            else:
                feats = encode_views(accelerator, model, images, local, first_view + epoch, seed, encode_batch_size)
            # this slice's mean loss, weighted so that the summed gradient is the global batch's mean
            loss = model(image_embeds=feats, labels=labels[local]).loss * (len(local) / len(batch))
            loss.backward()
            loss = loss.detach()
        if accelerator.num_processes > 1:
            for param in params:  # a process without examples, or an unused parameter, adds zeros
                grad = param.grad if param.grad is not None else torch.zeros_like(param)
                param.grad = accelerator.reduce(grad, reduction="sum")
            loss = accelerator.reduce(loss, reduction="sum")
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if on_step is not None:
            on_step(losses[-1])
    return float(np.mean(losses)) if losses else math.nan


@dataclass
class _Run:
    """What the epochs of one run share."""

    accelerator: Accelerator
    model: torch.nn.Module
    config: FinetuneConfig
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    state: RunState
    labels: torch.Tensor
    images: list
    bank: torch.Tensor | None
    first_view: int
    train_batch_size: int
    steps_per_epoch: int
    on_step: Callable[[int], None] | None = None
    bar: tqdm | None = None

    def after_step(self, epoch_end: bool) -> None:
        """Checkpoint when due (an epoch's last step only after its evaluation), then the caller's `on_step`."""
        every, done = self.config.checkpointing_steps, self.state.completed_steps
        if self.config.output_dir and (
            (every == "epoch" and epoch_end) or (isinstance(every, int) and done % every == 0)
        ):
            name = f"epoch_{len(self.state.history) - 1}" if every == "epoch" else f"step_{done}"
            save_checkpoint(self.accelerator, self.config.output_dir, name, self.state, self.model, self.optimizer,
                            self.scheduler)  # fmt: skip
        if self.on_step is not None:
            self.on_step(done)

    def step_done(self, loss: float) -> None:
        self.state.completed_steps += 1
        self.state.epoch_losses.append(loss)
        self.bar.update(1)
        if self.state.completed_steps % self.steps_per_epoch:
            self.after_step(epoch_end=False)

    def run_epoch(self, epoch: int, val_embeds: torch.Tensor, val_labels: torch.Tensor) -> None:
        """Train one epoch, evaluate it on validation, keep the first best epoch's parameters."""
        train_epoch(
            self.accelerator, self.model, self.optimizer, self.scheduler, self.labels, epoch,
            train_batch_size=self.train_batch_size, seed=self.config.seed, feature_bank=self.bank,
            images=None if self.bank is not None else self.images, encode_batch_size=self.config.encode_batch_size,
            on_step=self.step_done, first_view=self.first_view,
            skip_steps=self.state.completed_steps - epoch * self.steps_per_epoch,
        )  # fmt: skip
        state = self.state
        value = model_accuracy(self.accelerator, self.model, val_embeds, val_labels)
        record = {
            "epoch": epoch,
            "train_loss": float(np.mean(state.epoch_losses)),  # every step's, also across a resume
            "validation_accuracy": value,
            "learning_rate": self.scheduler.get_last_lr()[0],
        }
        state.history.append(record)
        state.epoch_losses = []
        self.accelerator.log({k: v for k, v in record.items() if k != "epoch"}, step=epoch)
        if value > state.best_accuracy:  # the first best epoch wins
            state.best_epoch, state.best_accuracy = epoch, value
            state.best_params = {k: p.detach().clone() for k, p in trained_named_parameters(self.model).items()}
        self.after_step(epoch_end=True)


def finetune(
    model,
    dataset,
    config: FinetuneConfig | None = None,
    accelerator: Accelerator | None = None,
    on_step: Callable[[int], None] | None = None,
) -> dict:
    r"""
    Fine-tune `model` on a few-shot set of `dataset["train"]` (Tip-Adapter-F: its cache keys), pick the best epoch
    on `dataset["validation"]`, search α/β again on it (Tip-Adapter), and report the test split (if any) once, at the
    end. A Tip-Adapter with an empty cache (fresh from `from_clip`) is first made a training-free Tip-Adapter from
    the same few-shot set (views `0..augment_epochs-1`, sharded) with α/β searched on validation; training draws
    views from `augment_epochs` on. The loss uses `config.alpha`/`beta`, else the model's at the call (> 0). The model
    is modified in place; with `config.output_dir` it is saved there with `all_results.json`. Nothing is registered
    on `accelerator`: the caller's objects and step stay as they are.

    Args:
        model ([`TipAdapterForImageClassification`] or another trained head): with a processor.
        dataset ([`~datasets.DatasetDict`]): `train` and `validation` splits, optionally `test`, whose class names
            match the model's `id2label`.
        config ([`FinetuneConfig`], *optional*): hyper-parameters and outputs.
        accelerator ([`~accelerate.Accelerator`], *optional*): defaults to a new one (on CPU without CUDA).
        on_step (`Callable[[int], None]`, *optional*): called with the completed steps after each step (after its
            checkpoint and, at an epoch's end, its evaluation).

    Returns:
        `dict`: what `all_results.json` holds: `num_processes`, `best_epoch`, `eval_accuracy` (validation, final),
        `validation` and (given a test split) `test` accuracies, the same at the top level for `eval_split`,
        `test_accuracy`, `train_runtime`, the per-epoch `history`, the resolved `finetune_config`.

    Example:

    ```python
    >>> from accelerate import Accelerator
    >>> from hf_tip.training.trainer import FinetuneConfig, finetune
    >>> results = finetune(model, dataset, FinetuneConfig(num_shots=16, output_dir="tip-adapter-f"), Accelerator())
    >>> results["eval_accuracy"], results["best_epoch"]
    ```
    """
    accelerator = accelerator if accelerator is not None else Accelerator(cpu=not torch.cuda.is_available())
    started = time.perf_counter()
    try:
        config, resume, checkpoint = prepare(model, dataset, config, accelerator)
    except ValueError as error:  # found before any collective: every process meets it (launchers print it once)
        error.same_on_every_process = True
        raise
    model.to(accelerator.device).eval()
    val_embeds, val_labels = encode_split(accelerator, model, dataset["validation"], config)
    images, labels = sample_training_set(model, dataset["train"], config)
    training_free = build_training_free(accelerator, model, images, labels, config, val_embeds, val_labels)
    first_view = getattr(model.config, "augment_epochs", 0)  # views 0..E-1 made the cache: training draws after
    views = config.num_augmented_views or config.augment_epochs or getattr(model.config, "augment_epochs", 1)
    bank = None
    if not config.online_augmentation:
        bank = encode_view_bank(accelerator, model, images, views, config.seed, config.encode_batch_size, first_view)
    enable_training(model, config)
    train_batch_size = config.per_device_train_batch_size * accelerator.num_processes
    steps_per_epoch = math.ceil(len(labels) / train_batch_size)
    optimizer, scheduler = create_optimizer_and_scheduler(
        model, config, steps_per_epoch * config.num_train_epochs, steps_per_epoch
    )
    state = RunState(signature(config, model, len(labels), train_batch_size, first_view, views))
    state.best_params = {k: p.detach().clone() for k, p in trained_named_parameters(model).items()}
    run = _Run(accelerator, model, config, optimizer, scheduler, state, labels, images, bank, first_view,
               train_batch_size, steps_per_epoch, on_step)  # fmt: skip
    _train(run, resume, checkpoint, val_embeds, val_labels)
    results = final_results(accelerator, model, dataset, config, run, training_free, (val_embeds, val_labels))
    results.update(resumed_from=str(resume) if resume is not None else None)
    results["train_runtime"] = time.perf_counter() - started
    results["finetune_config"] = {**asdict(config), "command": redact_text(config.command or "") or None}
    if config.output_dir:
        if accelerator.is_main_process:
            model.save_pretrained(config.output_dir)
            (Path(config.output_dir) / RESULTS_FILE).write_text(json.dumps(results, indent=2) + "\n")
        accelerator.wait_for_everyone()
    return results


def _train(run: _Run, resume, checkpoint, val_embeds, val_labels) -> None:
    """Restore a checkpoint (if any), run the remaining epochs, then install the best epoch's parameters."""
    total = run.steps_per_epoch * run.config.num_train_epochs
    run.bar = tqdm(total=total, desc="Fine-tuning", unit="step", disable=not run.accelerator.is_local_main_process)
    try:
        if checkpoint is not None:
            logger.info(f"Resuming from {resume}", main_process_only=True)
            restore(*checkpoint, run.state, run.model, run.optimizer, run.scheduler)
            run.bar.update(run.state.completed_steps)
        for epoch in range(run.state.completed_steps // run.steps_per_epoch, run.config.num_train_epochs):
            run.run_epoch(epoch, val_embeds, val_labels)
    finally:
        run.bar.close()
    with torch.no_grad():
        for name, param in trained_named_parameters(run.model).items():
            param.copy_(run.state.best_params[name])


__all__ = [
    "RESULTS_FILE",
    "FinetuneConfig",
    "accuracy",
    "check_dataset",
    "check_output_dir",
    "create_optimizer_and_scheduler",
    "encode_split",
    "encode_view_bank",
    "encode_views",
    "epoch_order",
    "find_checkpoint",
    "finetune",
    "sample_training_set",
    "train_epoch",
]
