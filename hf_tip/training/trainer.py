"""Fine-tuning a trained head with Accelerate: the one loop, in one module (as SetFit keeps its trainer).

Sections, in the order a run meets them: **checks** (the dataset against the model, the output folder), **setup**
(resolve the recipe, find the checkpoint, enable the trained parameters), **optimiser and schedule**, **evaluation**
(accuracies decided on the main process and broadcast), **the loop** ([`train_epoch`], the epochs of a run),
**results**, and **the run** ([`finetune`]). Its arguments are [`FinetuneConfig`] (`args.py`), its checkpoint format
`checkpoints.py`; the sharded data stages it composes (few-shot sample, view bank, split features, the training-free
Tip-Adapter it starts from) are [`~pipeline.sharded`].

The loop trains `[p for p in model.parameters() if p.requires_grad]` on `model(image_embeds=feats, labels=y).loss`:
the model decides what trains (Tip-Adapter-F: `enable_key_finetuning()`, only the cache keys `F` [NK,D]; other
heads: `enable_training()`), the recipe comes from [`FinetuneConfig.resolve`] (the method's registered recipe). The
best epoch is chosen on the validation split, α/β are searched again on it (Tip-Adapter), and the test split (if any)
is read once, at the end.

Two ways to draw the augmented views of an epoch: a **feature bank** (default) of `V = num_augmented_views` views
of every image encoded once, epoch `e` training on view `E + (e % V)`; or **online** (`online_augmentation=True`),
re-encoding view `E + e` of each batch at every step, as the paper's loop does. Views `0..E-1` (`E` = the model's
`augment_epochs`) are those averaged into the cache keys, so training starts at view `E`. Every process takes a
contiguous slice of each global batch and the gradients are summed, so 1 and N processes follow the same trajectory.

The schedule, for the `t`-th step of a run of `T` steps (`lr_scheduler_unit="step"`, Tip-Adapter-F: `T` = epochs x
iterations) or the `t`-th epoch of `T` epochs (`"epoch"`, CoOp / CLIP-Adapter: stepped once per epoch):

    lr(t) = warmup_learning_rate                               for t < W (W warm-up units)
    lr(t) = learning_rate * (1 + cos(pi * (t - W) / T)) / 2    after

(with `W = 0`, Tip-Adapter-F's `CosineAnnealingLR(T)`; with `W > 0`, Dassl's `ConstantWarmupScheduler` over a cosine
of period `T` restarted after the warm-up, as CoOp and CLIP-Adapter train).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.utils import broadcast_object_list
from PIL import Image
from tqdm.auto import tqdm

from ..cli.output_dir import check_writable
from ..data import datasets as data
from ..hub.redact import redact_text
from ..models.cache import tip_logits
from ..models.names import clean_class_name
from ..models.seeding import seeded_permutation
from ..pipeline.evaluation import compute_accuracy
from ..pipeline.sharded import (
    build_training_free,
    encode_split,
    encode_view_bank,
    encode_views,
    sample_training_set,
    shard,
)
from .args import FinetuneConfig
from .checkpoints import (
    CHECKPOINTS_DIR,
    RunState,
    find_checkpoint,
    load_checkpoint,
    restore,
    save_checkpoint,
    signature,
    trained_named_parameters,
)

logger = get_logger(__name__)
RESULTS_FILE = "all_results.json"
EVAL_CHUNK = 4096  # validation rows per forward: bounds the [rows, NK] affinity
# Entries of an output folder that belong to a run in progress (its checkpoints and its trackers' logs).
RUN_IN_PROGRESS = {CHECKPOINTS_DIR, "logs"}


# ------------------------------------------------------------------------------------------------------------ checks


def _model_class_names(model) -> list[str]:
    return [model.config.id2label[i] for i in range(len(model.config.id2label))]


def check_dataset(model, dataset, config: FinetuneConfig) -> list[int] | None:
    """[`data.check_dataset`] for fine-tuning: `train` and `validation` splits, the columns, the same classes in every
    split, matched to the model's by name or by `config.class_names` (the model's name of each dataset label, in
    label order). Returns the label map (dataset label -> model class; `None` when they agree)."""
    model_names = _model_class_names(model)
    if config.class_names is not None:
        unknown = {clean_class_name(n) for n in config.class_names} - {clean_class_name(n) for n in model_names}
        if unknown:
            raise ValueError(f"`class_names` {list(config.class_names)} are not the model's classes {model_names}.")
    return data.check_dataset(
        dataset,
        model_names,
        image_column=config.image_column,
        label_column=config.label_column,
        class_mapping=config.class_names,
        required_splits=("train", "validation"),
        mapping_argument="`class_names` (`--class_names`)",
    )


def check_output_dir(config: FinetuneConfig) -> None:
    """Raise a `ValueError` when `output_dir` holds anything but a run in progress (its `checkpoints/` and `logs/`),
    unless `overwrite_output_dir`: a saved model is never replaced silently, also when resuming."""
    if config.output_dir is None:
        return
    path = check_writable(config.output_dir, "`output_dir` (`--output_dir`)")
    entries = sorted(set(os.listdir(path)) - RUN_IN_PROGRESS) if path.is_dir() else []
    if config.resume_from_checkpoint is None and (path / CHECKPOINTS_DIR).is_dir():
        entries = sorted({*entries, CHECKPOINTS_DIR})  # another run's checkpoints: replaced only on request
    if entries and not config.overwrite_output_dir:
        shown = ", ".join(entries[:6]) + (", ..." if len(entries) > 6 else "")
        hint = "" if config.resume_from_checkpoint else ", `--resume_from_checkpoint latest` to continue it"
        raise ValueError(
            f"`output_dir` {str(path)!r} already holds another run ({shown}). Pass `--overwrite_output_dir` to "
            f"replace it{hint}, or choose another `--output_dir`."
        )


# ------------------------------------------------------------------------------------------------------------- setup


def prepare(
    model, dataset, config: FinetuneConfig | None, accelerator
) -> tuple[FinetuneConfig, Path | None, tuple | None]:
    """Resolve the seed and the recipe, run every check that needs no collective (identically on every process),
    find the checkpoint to resume from; then clear a replaced run's checkpoints."""
    config = (config if config is not None else FinetuneConfig()).resolve(model)
    built_from = (
        model.config.few_shot_seed
        if getattr(model, "cache_keys", None) is not None and len(model.cache_keys)
        else None
    )
    if config.seed is None:  # train on the images the cache was built from
        config = replace(config, seed=built_from if built_from is not None else 1)
    elif built_from is not None and built_from != config.seed:
        warnings.warn(
            f"The cache was built from the few-shot sample of seed {built_from}, but fine-tuning samples seed "
            f"{config.seed}: its keys will be trained on other images. Leave the seed unset to use the cache's.",
            UserWarning,
            stacklevel=3,
        )
    label_map = check_dataset(model, dataset, config)
    if label_map is not None:  # the dataset's classes by the model's names: every later read maps labels alike
        config = replace(config, class_names=[model.config.id2label[i] for i in label_map])
    check_output_dir(config)
    if hasattr(model, "cache_keys"):
        alpha = config.alpha if config.alpha is not None else model.config.alpha
        beta = config.beta if config.beta is not None else model.config.beta
        if not alpha > 0:
            raise ValueError(
                f"The training alpha is {alpha!r} (`FinetuneConfig.alpha` unset: the model's `config.alpha`): at 0 "
                "the cache term vanishes and the keys get no gradient. Pass `FinetuneConfig(alpha=...)` > 0 (`--alpha`)."
            )
        config = replace(config, alpha=alpha, beta=beta)
    resume = (
        find_checkpoint(config.output_dir, config.resume_from_checkpoint) if config.resume_from_checkpoint else None
    )
    checkpoint = load_checkpoint(resume) if resume is not None else None  # a broken one fails here, on every process
    accelerator.wait_for_everyone()  # every process has checked the output folder before anything is written to it
    if accelerator.is_main_process and config.output_dir and resume is None:
        shutil.rmtree(Path(config.output_dir) / CHECKPOINTS_DIR, ignore_errors=True)  # a replaced run's checkpoints
    return config, resume, checkpoint


def enable_training(model, config: FinetuneConfig) -> None:
    """Make the trained parameters trainable (the model decides which), at the training α/β for Tip-Adapter."""
    if hasattr(model, "enable_key_finetuning"):
        model.enable_key_finetuning()
        model.config.alpha, model.config.beta = config.alpha, config.beta
    else:
        model.enable_training()


# -------------------------------------------------------------------------------------------- optimiser and schedule


def trainable_parameters(model) -> list[torch.nn.Parameter]:
    """What the run trains: the parameters the model made trainable (`enable_key_finetuning()` for Tip-Adapter-F,
    `enable_training()` for other heads)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError(
            "The model has no trainable parameter: call `model.enable_key_finetuning()` (Tip-Adapter-F) or "
            "`model.enable_training()` first."
        )
    return params


def cosine_factor(unit: int, total: int, warmup: int, base_lr: float, warmup_lr: float) -> float:
    """The multiplier of `base_lr` at schedule unit `unit` (see the module docstring's schedule)."""
    if unit < warmup:
        return warmup_lr / base_lr
    return 0.5 * (1.0 + math.cos(math.pi * (unit - warmup) / total))


def create_optimizer_and_scheduler(
    model, config: FinetuneConfig, num_training_steps: int, steps_per_epoch: int | None = None
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    r"""
    The optimizer over [`trainable_parameters`] and its schedule, stepped once per training step.

    Args:
        model: with its trained parameters enabled.
        config ([`FinetuneConfig`]): the recipe (fields left at `None` take the method's values, see `resolve`).
        num_training_steps (`int`): the steps of the whole run (epochs x iterations).
        steps_per_epoch (`int`, *optional*): needed with warm-up epochs or an epoch-wise schedule.
    """
    config = config.resolve(model)
    params = trainable_parameters(model)
    if config.optimizer == "sgd":
        optimizer = torch.optim.SGD(
            params, lr=config.learning_rate, momentum=config.momentum, weight_decay=config.weight_decay
        )
    else:
        optimizer = torch.optim.AdamW(
            params, lr=config.learning_rate, eps=config.adam_epsilon, weight_decay=config.weight_decay
        )
    if not config.warmup_epochs and config.lr_scheduler_unit == "step":  # the paper's Tip-Adapter-F, exactly
        return optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, num_training_steps)
    if steps_per_epoch is None:
        raise ValueError("A warm-up or an epoch-wise schedule needs `steps_per_epoch`.")
    per_epoch = config.lr_scheduler_unit == "epoch"
    total = num_training_steps // steps_per_epoch if per_epoch else num_training_steps
    warmup = config.warmup_epochs * (1 if per_epoch else steps_per_epoch)

    def factor(step: int) -> float:
        unit = step // steps_per_epoch if per_epoch else step
        return cosine_factor(unit, total, warmup, config.learning_rate, config.warmup_learning_rate)

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


# -------------------------------------------------------------------------------------------------------- evaluation


def accuracy(accelerator: Accelerator, logits: torch.Tensor, labels: torch.Tensor) -> float:
    """`compute_accuracy` on the main process, broadcast so that every process takes the same decisions."""
    value = [compute_accuracy(logits.float().cpu(), labels.cpu()) if accelerator.is_main_process else None]
    if accelerator.num_processes > 1:
        broadcast_object_list(value)
    return value[0]


@torch.no_grad()
def model_accuracy(accelerator: Accelerator, model, embeds: torch.Tensor, labels: torch.Tensor) -> float:
    """Accuracy of the model as it is now (`model(image_embeds=...).logits`) on normalised features [N,D]."""
    logits = [model(image_embeds=embeds[i : i + EVAL_CHUNK]).logits for i in range(0, len(embeds), EVAL_CHUNK)]
    return accuracy(accelerator, torch.cat(logits) if logits else embeds.new_zeros(0, 0), labels)


@torch.no_grad()
def _tip_accuracy(accelerator, model, embeds, labels, keys: torch.Tensor, alpha: float, beta: float) -> float:
    """Accuracy of the Tip logits of normalised features [N,D] for given keys [NK,D] and α/β."""
    weights = model.zero_shot_weights  # features are float32: cast to the head's dtype (a fp16/bf16 model)
    scale = model.clip.logit_scale.exp().to(weights)
    logits = tip_logits(embeds.to(weights), weights, keys.detach().to(weights), model.cache_labels, scale, alpha, beta)
    return accuracy(accelerator, logits, labels)


def _accuracy_key(model, training_free) -> str:
    """The result key of the trained model: `tip_adapter_f_accuracy`, else its method's (`clip_adapter_accuracy`),
    as the model card names results."""
    return (
        "tip_adapter_f_accuracy"
        if training_free is not None
        else f"{model.config.model_type.replace('-', '_')}_accuracy"
    )


def _accuracies(accelerator, model, embeds, labels, training_free) -> dict:
    """Zero-shot CLIP, the training-free Tip-Adapter (its keys, α, β) and the model as it is now, on one split."""
    zero_shot = accuracy(accelerator, model.zero_shot_logits(embeds), labels)
    if training_free is None:  # another trained head
        trained = model_accuracy(accelerator, model, embeds, labels)
        return {"zero_shot_accuracy": zero_shot, _accuracy_key(model, None): trained}
    return {
        "zero_shot_accuracy": zero_shot,
        "tip_adapter_accuracy": _tip_accuracy(accelerator, model, embeds, labels, *training_free),
        "tip_adapter_f_accuracy": model_accuracy(accelerator, model, embeds, labels),
    }


# ---------------------------------------------------------------------------------------------------------- the loop


def epoch_order(num_examples: int, seed: int, epoch: int) -> list[int]:
    """The shuffled order of the few-shot set in `epoch`: a function of `(seed, epoch)` only (stream `("epoch", epoch)`
    of `data.shuffle_keys`'s scheme), never of the number of processes."""
    return seeded_permutation(num_examples, seed, "epoch", epoch)


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


# ----------------------------------------------------------------------------------------------------------- results


def _check_identical(accelerator: Accelerator, model) -> None:
    """Raise when a trained parameter differs between processes (a bug: gradients are summed identically)."""
    for name, param in model.named_parameters():
        if param.requires_grad:
            every_rank = accelerator.gather(param.detach()[None].contiguous())
            if not bool((every_rank == every_rank[:1]).all()):
                raise RuntimeError(f"The fine-tuned `{name}` differs between processes; please report this as a bug.")


def final_results(accelerator, model, dataset, config: FinetuneConfig, run, training_free, validation) -> dict:
    """After training (best epoch installed): search α/β again on validation (Tip-Adapter), check every process
    agrees, report validation and (read once, now) test, and describe the run in `model.card_data`."""
    val_embeds, val_labels = validation
    if training_free is not None:
        model.search_hyperparameters(val_embeds, val_labels)
    _check_identical(accelerator, model)
    signature, state = run.state.signature, run.state
    results = {
        "num_processes": accelerator.num_processes, "num_shots": config.num_shots or model.config.num_shots,
        "num_examples": len(run.labels), "num_train_epochs": config.num_train_epochs,
        "train_batch_size": run.train_batch_size, "per_device_train_batch_size": config.per_device_train_batch_size,
        "augmentation": signature["augmentation"], "first_training_view": run.first_view,
        "optimizer": config.optimizer, "learning_rate": config.learning_rate, "trained": signature["trained"],
        "best_epoch": state.best_epoch, "keys_identical_across_processes": True, "history": state.history,
        "recipe": config.recipe(),
    }  # fmt: skip
    if training_free is not None:
        results.update(
            train_alpha=config.alpha, train_beta=config.beta, tip_adapter_alpha=training_free[1],
            tip_adapter_beta=training_free[2], alpha=model.config.alpha, beta=model.config.beta,
        )  # fmt: skip
    results["validation"] = _accuracies(accelerator, model, val_embeds, val_labels, training_free)
    final_key = _accuracy_key(model, training_free)
    results["eval_accuracy"], results["eval_split"] = results["validation"][final_key], "validation"
    if "test" in dataset:  # read once, now
        test_embeds, test_labels = encode_split(accelerator, model, dataset["test"], config)
        results["test"] = _accuracies(accelerator, model, test_embeds, test_labels, training_free)
        results["eval_split"], results["test_accuracy"] = "test", results["test"][final_key]
    results.update(results[results["eval_split"]])
    if hasattr(model, "card_data"):
        model.card_data.update(
            dataset_name=config.dataset_name, eval_split=results["eval_split"], num_shots=results["num_shots"],
            results=dict(results[results["eval_split"]]), command=config.command,
        )  # fmt: skip
    return results


# ----------------------------------------------------------------------------------------------------------- the run


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
    "EVAL_CHUNK",
    "RESULTS_FILE",
    "RUN_IN_PROGRESS",
    "FinetuneConfig",
    "accuracy",
    "check_dataset",
    "check_output_dir",
    "cosine_factor",
    "create_optimizer_and_scheduler",
    "enable_training",
    "encode_split",
    "encode_view_bank",
    "encode_views",
    "epoch_order",
    "final_results",
    "find_checkpoint",
    "finetune",
    "model_accuracy",
    "prepare",
    "sample_training_set",
    "train_epoch",
    "trainable_parameters",
]
