"""Tip-Adapter-F: fine-tune the cache keys on the few-shot set with Accelerate (the paper's training, as a library).

Only the keys `F` [NK,D] train; CLIP, the zero-shot weights `W` and the values `L` stay frozen. The loss is the
cross-entropy of the Tip logits (`TipAdapterForImageClassification.forward` with `image_embeds`, i.e. `cache.py`)
at fixed α/β; AdamW (eps 1e-4) and a cosine schedule over all steps, as in the paper. The best epoch is chosen on
the validation split, α/β are searched again on it, and the test split (if any) is read once, at the end.

Two ways to draw the augmented views of an epoch, both exposed for benchmarks through `train_epoch`:

- **feature bank** (default): `encode_view_bank` encodes `V = num_augmented_views` augmented views of every few-shot
  image once (sharded across processes, then gathered) and epoch `e` trains on view `E + (e % V)`;
- **online** (`online_augmentation=True`): each step re-encodes fresh views of its batch (view `E + e`), as the
  paper's loop does.

View `v` of image `i` is drawn from `features.view_generator(seed, v, i)` in both, so with as many views as epochs
the two paths train on the same features. Views `0..E-1` (`E` = the model's `augment_epochs`) are the ones averaged
into the cache keys (`build_cache`; from a backbone, `finetune` encodes them sharded itself), so training starts
at view `E`: as in the paper, Tip-Adapter-F trains on fresh augmentations, not on the views of its initial keys.
The order of each epoch depends on `(seed, epoch)` only, and every process takes a contiguous slice of each global
batch, so 1 and N processes with the same global batch follow the same trajectory.
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
from typing import Literal

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.utils import broadcast, broadcast_object_list, gather_object
from PIL import Image
from tqdm.auto import tqdm

from . import procedure
from .cache import tip_logits
from .data import check_columns, dataset_class_names, sample_few_shot
from .evaluation import compute_accuracy
from .features import iter_augmented_features
from .loading import require_split

logger = get_logger(__name__)

CHECKPOINTS_DIR = "checkpoints"
RESULTS_FILE = "all_results.json"
STATE_FILE = "trainer_state.json"
# Entries of an output folder that do not make it "another run": the trackers' logs of this run.
_NOT_A_RUN = {"logs"}


@dataclass
class FinetuneConfig:
    r"""
    Hyper-parameters and outputs of a Tip-Adapter-F run ([`finetune`]).

    Args:
        num_shots (`int`, *optional*):
            Examples per class sampled (seeded by `seed`) from the train split; defaults to the model's `num_shots`.
        num_train_epochs (`int`, *optional*, defaults to `20`): passes over the few-shot set (EuroSAT: 100).
        learning_rate (`float`, *optional*, defaults to `1e-3`): AdamW's peak learning rate (cosine decay to 0).
        adam_epsilon (`float`, *optional*, defaults to `1e-4`): AdamW's eps, as in the paper.
        weight_decay (`float`, *optional*, defaults to `0.01`): AdamW's decoupled weight decay (PyTorch's default).
        per_device_train_batch_size (`int`, *optional*, defaults to `256`):
            Examples per process and step; the global batch is this times the number of processes.
        seed (`int`, *optional*): seeds the few-shot sampling, the views and each epoch's order. Defaults to the seed
            the model's cache was sampled with (`config.few_shot_seed`, so the keys train on their own images), else 1.
        alpha (`float`, *optional*):
            α of the training loss (> 0: at 0 the cache term, and so the keys' gradient, vanishes); defaults to the
            model's `config.alpha` at the call.
        beta (`float`, *optional*): β of the training loss (>= 0); defaults to the model's `config.beta` at the call.
        online_augmentation (`bool`, *optional*, defaults to `False`):
            Re-encode fresh views at every step (the paper's loop) instead of training on an encoded feature bank.
        num_augmented_views (`int`, *optional*):
            Views per image in the feature bank (views `augment_epochs`, `augment_epochs + 1`, ..., after the
            cache's); defaults to the model's `augment_epochs`. With `num_augmented_views >= num_train_epochs` the
            bank holds exactly the online path's views.
        augment_epochs (`int`, *optional*):
            Views (`0..augment_epochs-1`) averaged into each key when the model's cache is empty and is built first.
        encode_batch_size (`int`, *optional*, defaults to `64`): images per CLIP forward when encoding.
        image_column (`str`, *optional*, defaults to `"image"`): the dataset's image column.
        label_column (`str`, *optional*, defaults to `"label"`): the dataset's label column.
        allow_fewer_shots (`bool`, *optional*, defaults to `False`): take all examples of classes with fewer.
        class_names (`list[str]`, *optional*):
            The model's name of each of the dataset's labels, in label order, when the model renamed the dataset's
            classes (a preset's "Annual Crop Land" for "AnnualCrop"); must equal the model's `id2label`. By default
            the dataset's `ClassLabel` names must be the model's.
        output_dir (`str`, *optional*):
            Where to save the model, `all_results.json` and the checkpoints; nothing is written without it.
        overwrite_output_dir (`bool`, *optional*, defaults to `False`): replace a run already in `output_dir`.
        checkpointing_steps (`int` or `"epoch"`, *optional*): save a checkpoint every N steps or every epoch.
        resume_from_checkpoint (`str`, *optional*): a checkpoint folder, or `"latest"` (in `output_dir`).
        feature_cache_dir (`str`, *optional*): safetensors cache of the validation/test features.
        dataset_name (`str`, *optional*): the Hub dataset id, recorded in the model card.
        command (`str`, *optional*): the command line of the run, recorded in the model card.

    Example:

    ```python
    >>> from hf_tip.training import FinetuneConfig
    >>> config = FinetuneConfig(num_shots=16, num_train_epochs=100, output_dir="tip-f", checkpointing_steps="epoch")
    >>> config.adam_epsilon, config.per_device_train_batch_size
    (0.0001, 256)
    ```
    """

    num_shots: int | None = None
    num_train_epochs: int = 20
    learning_rate: float = 1e-3
    adam_epsilon: float = 1e-4
    weight_decay: float = 0.01
    per_device_train_batch_size: int = 256
    seed: int | None = None
    alpha: float | None = None
    beta: float | None = None
    online_augmentation: bool = False
    num_augmented_views: int | None = None
    augment_epochs: int | None = None
    encode_batch_size: int = 64
    image_column: str = "image"
    label_column: str = "label"
    allow_fewer_shots: bool = False
    class_names: list[str] | None = None
    output_dir: str | None = None
    overwrite_output_dir: bool = False
    checkpointing_steps: int | Literal["epoch"] | None = None
    resume_from_checkpoint: str | None = None
    feature_cache_dir: str | None = None
    dataset_name: str | None = None
    command: str | None = None

    def __post_init__(self):
        for name in ("num_train_epochs", "per_device_train_batch_size", "encode_batch_size"):
            _check_positive_int(name, getattr(self, name))
        for name in ("num_shots", "num_augmented_views", "augment_epochs"):
            if getattr(self, name) is not None:
                _check_positive_int(name, getattr(self, name))
        for name in ("learning_rate", "adam_epsilon"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not value > 0 or math.isinf(value):
                raise ValueError(f"`{name}` must be a finite number > 0, got {value!r}.")
        for name in ("weight_decay", "beta"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, (int, float)) or not 0 <= value < math.inf):
                raise ValueError(f"`{name}` must be a finite number >= 0, got {value!r}.")
        if self.alpha is not None and (not isinstance(self.alpha, (int, float)) or not 0 < self.alpha < math.inf):
            raise ValueError(
                f"`alpha` must be a finite number > 0, got {self.alpha!r} (at 0 the keys get no gradient)."
            )
        steps = self.checkpointing_steps
        if isinstance(steps, str) and steps.isdigit():
            self.checkpointing_steps = steps = int(steps)
        if steps is not None and steps != "epoch":
            _check_positive_int("checkpointing_steps", steps, hint=' or "epoch"')
        if (self.checkpointing_steps is not None or self.resume_from_checkpoint is not None) and not self.output_dir:
            raise ValueError("`checkpointing_steps` and `resume_from_checkpoint` need an `output_dir`.")


def _check_positive_int(name: str, value, hint: str = "") -> None:
    """Raise a `ValueError` naming `name` unless `value` is an integer >= 1."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"`{name}` must be an integer >= 1{hint}, got {value!r}.")


# --------------------------------------------------------------------------------------------------------- checks
def check_dataset(model, dataset, config: FinetuneConfig) -> None:
    """Raise a `ValueError` for a missing train/validation split, a missing column, splits with different classes,
    or classes that differ from the model's (naming them)."""
    require_split(dataset, "train", "--train_dir")
    require_split(dataset, "validation", "--validation_dir")
    model_names = [model.config.id2label[i] for i in range(model.num_classes)]
    renamed = config.class_names is not None
    if renamed and list(config.class_names) != model_names:
        raise ValueError(f"`class_names` {list(config.class_names)} are not the model's classes {model_names}.")
    reference = dataset_class_names(dataset["train"], config.label_column)
    for split_name, split in dataset.items():
        check_columns(split, config.image_column, config.label_column)
        names = dataset_class_names(split, config.label_column)
        if names is None or names == model_names:
            continue
        if names != reference:
            raise ValueError(f"The `{split_name}` split's classes {names} are not the `train` split's {reference}.")
        if len(names) != len(model_names):
            raise ValueError(
                f"The `{split_name}` split has {len(names)} classes {names}, the model {len(model_names)} "
                f"{model_names}. Fine-tune a model built for this dataset's classes."
            )
        if renamed:  # declared: label i of the dataset is the model's class i
            continue
        only_data = [n for n in names if n not in model_names]
        only_model = [n for n in model_names if n not in names]
        if not only_data:
            raise ValueError(
                f"The `{split_name}` split lists the model's classes in another order: {names} (the model: "
                f"{model_names}); its label indices would point at the wrong classes."
            )
        raise ValueError(
            f"The `{split_name}` split's classes differ from the model's: only in the dataset: {only_data}; only in "
            f"the model: {only_model}. If the model renamed this dataset's classes (label i is the model's class i), "
            "pass the model's names as `class_names` (`--class_names`)."
        )


def check_output_dir(config: FinetuneConfig) -> None:
    """Raise a `ValueError` when `output_dir` already holds another run, unless overwriting or resuming."""
    if config.output_dir is None or config.resume_from_checkpoint is not None:
        return
    path = Path(config.output_dir)
    if path.exists() and not path.is_dir():
        raise ValueError(f"`output_dir` {str(path)!r} exists and is not a directory.")
    entries = sorted(set(os.listdir(path)) - _NOT_A_RUN) if path.is_dir() else []
    if entries and not config.overwrite_output_dir:
        shown = ", ".join(entries[:6]) + (", ..." if len(entries) > 6 else "")
        raise ValueError(
            f"`output_dir` {str(path)!r} already holds another run ({shown}). Pass `--overwrite_output_dir` to "
            "replace it, `--resume_from_checkpoint latest` to continue it, or choose another `--output_dir`."
        )


def find_checkpoint(output_dir: str | os.PathLike, resume_from_checkpoint: str) -> Path:
    """The checkpoint folder to resume from: `resume_from_checkpoint` itself, or with `"latest"` the checkpoint in
    `output_dir/checkpoints` with the most completed steps."""
    if resume_from_checkpoint != "latest":
        path = Path(resume_from_checkpoint)
        if not (path / STATE_FILE).is_file():
            raise ValueError(f"`resume_from_checkpoint` {str(path)!r} is not a checkpoint folder (no {STATE_FILE}).")
        return path
    root = Path(output_dir) / CHECKPOINTS_DIR
    found = [p for p in root.glob("*") if not p.name.startswith(".") and (p / STATE_FILE).is_file()]
    if not found:
        raise ValueError(f"`resume_from_checkpoint latest`: no checkpoint in {str(root)!r}.")
    return max(found, key=lambda p: json.loads((p / STATE_FILE).read_text())["completed_steps"])


# ------------------------------------------------------------------------------------------------- data and views
def epoch_order(num_examples: int, seed: int, epoch: int) -> list[int]:
    """The shuffled order of the few-shot set in `epoch`: a function of `(seed, epoch)` only, never of the number of
    processes."""
    return np.random.default_rng([seed, epoch]).permutation(num_examples).tolist()


def sample_training_set(model, train_dataset, config: FinetuneConfig) -> tuple[list[Image.Image], torch.Tensor]:
    """The few-shot images and labels [N] (`num_shots` per class, seeded), in class order, as `build_cache` samples."""
    num_shots = config.num_shots or model.config.num_shots
    class_names = [model.config.id2label[i] for i in range(model.num_classes)]
    picked = sample_few_shot(
        list(train_dataset[config.label_column]), num_shots, config.seed, class_names, config.allow_fewer_shots
    )
    few_shot = train_dataset.select(picked)
    return list(few_shot[config.image_column]), torch.as_tensor(list(few_shot[config.label_column]))


def _shard(accelerator: Accelerator, items: Sequence[int]) -> list[int]:
    """This process's contiguous slice of `items` (the first processes take one more when it does not divide)."""
    with accelerator.split_between_processes(list(items)) as part:
        return list(part)


def _gather(accelerator: Accelerator, local: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """Concatenate every process's (possibly differently sized) tensor along `dim`, in process order."""
    if accelerator.num_processes == 1:
        return local
    return torch.cat([part.cpu() for part in gather_object([local.cpu()])], dim=dim)


def encode_view_bank(
    accelerator: Accelerator,
    model,
    images: Sequence[Image.Image],
    num_views: int,
    seed: int = 1,
    batch_size: int = 64,
    first_view: int = 0,
) -> torch.Tensor:
    r"""
    Raw CLIP features `[V, N, D]` (float32) of views `first_view .. first_view + num_views - 1` of every image,
    encoded once: each process encodes a contiguous shard, then all gather. View `v` of image `i` comes from
    `view_generator(seed, v, i)`, so the bank is the same whatever the number of processes. Views `0..E-1` are the
    cache's (`build_cache` with `augment_epochs=E`); Tip-Adapter-F trains on a bank with `first_view=E`.
    """
    shard = _shard(accelerator, range(len(images)))
    local = torch.zeros(num_views, len(shard), model.zero_shot_weights.shape[1])
    views = iter_augmented_features(
        model.clip, [images[i] for i in shard], num_views, *model._image_geometry(), seed=seed, batch_size=batch_size,
        indices=shard, show_progress=accelerator.is_local_main_process, first_epoch=first_view,
    )  # fmt: skip
    with accelerator.autocast():
        for view, start, feats in views:
            local[view - first_view, start : start + feats.shape[0]] = feats
    return _gather(accelerator, local, dim=1).to(accelerator.device)


def encode_views(
    accelerator: Accelerator,
    model,
    images: Sequence[Image.Image],
    indices: Sequence[int],
    view: int,
    seed: int = 1,
    batch_size: int = 64,
) -> torch.Tensor:
    """Raw CLIP features `[b, D]` of view `view` of `images[i]` for `i` in `indices` (the bank's views)."""
    views = iter_augmented_features(
        model.clip, [images[i] for i in indices], 1, *model._image_geometry(), seed=seed, batch_size=batch_size,
        indices=indices, show_progress=False, first_epoch=view,
    )  # fmt: skip
    with accelerator.autocast():
        parts = [feats for _, _, feats in views]
    out = torch.cat(parts) if parts else torch.zeros(0, model.zero_shot_weights.shape[1])
    return out.to(accelerator.device)


def encode_split(
    accelerator: Accelerator, model, dataset, config: FinetuneConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """L2-normalised features [N,D] and labels [N] of a split (eval transform), sharded across processes and
    gathered; on the accelerator's device."""
    shard = _shard(accelerator, range(len(dataset)))
    embeds, labels = torch.zeros(0, model.zero_shot_weights.shape[1]), torch.zeros(0, dtype=torch.long)
    if shard:
        with accelerator.autocast():
            embeds, labels = procedure.encode_split(
                model,
                dataset.select(shard),
                image_column=config.image_column,
                label_column=config.label_column,
                feature_cache_dir=config.feature_cache_dir,
                batch_size=config.encode_batch_size,
                show_progress=accelerator.is_local_main_process,
            )
    device = accelerator.device
    return _gather(accelerator, embeds).to(device), _gather(accelerator, labels).to(device)


# ------------------------------------------------------------------------------------------------------- training
def create_optimizer_and_scheduler(
    model, config: FinetuneConfig, num_training_steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """AdamW over the cache keys only (eps `config.adam_epsilon`) and a cosine schedule over all steps (the paper)."""
    optimizer = torch.optim.AdamW(
        [model.cache_keys], lr=config.learning_rate, eps=config.adam_epsilon, weight_decay=config.weight_decay
    )
    return optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, num_training_steps)


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
    One epoch of Tip-Adapter-F over the few-shot set, on precomputed views or re-encoding them.

    Args:
        accelerator ([`~accelerate.Accelerator`]): the run's accelerator (its processes split every batch).
        model ([`TipAdapterForImageClassification`]): with trainable keys (`enable_key_finetuning()`).
        optimizer, scheduler: from [`create_optimizer_and_scheduler`] (the optimizer may be `accelerator.prepare`d).
        labels (`torch.LongTensor` of shape `[N]`): the class of each few-shot example.
        epoch (`int`): the epoch index; it fixes the order and the view: view `first_view + epoch % V` (the bank's
            `epoch % V`-th) with a bank, view `first_view + epoch` online.
        train_batch_size (`int`): the GLOBAL batch size; each process takes a contiguous slice of every batch.
        feature_bank (`torch.FloatTensor` of shape `[V, N, D]`, *optional*): from [`encode_view_bank`] (fast path).
        images (`list[PIL.Image.Image]`, *optional*): the few-shot images, re-encoded at each step (online path).
            Pass exactly one of `feature_bank` and `images`.
        skip_steps (`int`, *optional*, defaults to `0`): steps of this epoch already done (when resuming).
        on_step (`Callable[[float], None]`, *optional*): called with the global batch's loss after every step.
        first_view (`int`, *optional*, defaults to `0`): the number of the first training view: the bank's
            `first_view`, and the offset of the online views. `finetune` passes the cache's `augment_epochs`, so
            training never sees the views averaged into the initial keys.

    Returns:
        `float`: the mean over the steps run of the global batch's cross-entropy (`nan` if none ran).
    """
    if (feature_bank is None) == (images is None):
        raise ValueError("Pass exactly one of `feature_bank` (fast path) and `images` (online augmentation).")
    keys = model.cache_keys
    if not keys.requires_grad:
        raise ValueError("The cache keys are frozen: call `model.enable_key_finetuning()` first.")
    order = epoch_order(len(labels), seed, epoch)
    labels = labels.to(accelerator.device)
    losses = []
    for step, start in enumerate(range(0, len(order), train_batch_size)):
        if step < skip_steps:
            continue
        batch = order[start : start + train_batch_size]
        local = _shard(accelerator, batch)
        if local:
            if feature_bank is not None:
                feats = feature_bank[epoch % feature_bank.shape[0], local]
            else:
                feats = encode_views(accelerator, model, images, local, first_view + epoch, seed, encode_batch_size)
            feats = feats.to(model.zero_shot_weights)  # the head's device and dtype (a fp16/bf16 model)
            # the model's mean loss over this slice, weighted so that the summed gradient is the global batch's mean
            loss = model(image_embeds=feats, labels=labels[local]).loss * (len(local) / len(batch))
            accelerator.backward(loss)
            loss = loss.detach()
        else:
            loss, keys.grad = keys.new_zeros(()), torch.zeros_like(keys)
        if accelerator.num_processes > 1:
            keys.grad = accelerator.reduce(keys.grad, reduction="sum")
            loss = accelerator.reduce(loss, reduction="sum")
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if on_step is not None:
            on_step(losses[-1])
    return float(np.mean(losses)) if losses else math.nan


class _Progress:
    """What a checkpoint holds besides the optimizer and the scheduler: the keys, the step count, the best epoch."""

    def __init__(self, keys: torch.nn.Parameter, signature: dict):
        self.keys, self.signature = keys, signature
        self.completed_steps, self.history, self.epoch_losses = 0, [], []
        self.best_epoch, self.best_accuracy, self.best_keys = -1, -1.0, keys.detach().clone()

    def state_dict(self) -> dict:
        return {
            "cache_keys": self.keys.detach().cpu().clone(),
            "best_keys": self.best_keys.cpu().clone(),
            "completed_steps": self.completed_steps,
            "history": self.history,
            "epoch_losses": self.epoch_losses,
            "best_epoch": self.best_epoch,
            "best_accuracy": self.best_accuracy,
            "signature": self.signature,
        }

    def load_state_dict(self, state: dict) -> None:
        if state["signature"] != self.signature:
            changed = {
                k: (v, self.signature.get(k)) for k, v in state["signature"].items() if self.signature.get(k) != v
            }
            raise ValueError(
                f"The checkpoint comes from a run with other settings (setting: (checkpoint, now)): {changed}. Resume "
                "with the same arguments and number of processes x batch size."
            )
        with torch.no_grad():
            self.keys.copy_(state["cache_keys"].to(self.keys))
        self.best_keys = state["best_keys"].to(self.keys)
        self.completed_steps, self.history = state["completed_steps"], list(state["history"])
        self.epoch_losses = list(state["epoch_losses"])
        self.best_epoch, self.best_accuracy = state["best_epoch"], state["best_accuracy"]


def _save_checkpoint(accelerator: Accelerator, output_dir: str, name: str, progress: _Progress) -> None:
    """`accelerator.save_state` into a temporary folder renamed once complete: a kill leaves no half checkpoint."""
    root = Path(output_dir) / CHECKPOINTS_DIR
    final, tmp = root / name, root / f".tmp-{name}"
    if accelerator.is_main_process and tmp.exists():
        shutil.rmtree(tmp)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        epochs = len(progress.history)
        (tmp / STATE_FILE).write_text(json.dumps({"completed_steps": progress.completed_steps, "epochs": epochs}))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    accelerator.wait_for_everyone()


def _accuracy(accelerator: Accelerator, logits: torch.Tensor, labels: torch.Tensor) -> float:
    """`compute_accuracy` on the main process, broadcast so that every process takes the same decisions."""
    value = [compute_accuracy(logits.float().cpu(), labels.cpu()) if accelerator.is_main_process else None]
    if accelerator.num_processes > 1:
        broadcast_object_list(value)
    return value[0]


@torch.no_grad()
def _tip_accuracy(accelerator, model, embeds, labels, keys: torch.Tensor, alpha: float, beta: float) -> float:
    """Accuracy of the Tip logits of normalised features [N,D] for given keys [NK,D] and α/β."""
    weights = model.zero_shot_weights  # features are float32: cast to the head's dtype (a fp16/bf16 model)
    scale = model.clip.logit_scale.exp().to(weights)
    logits = tip_logits(embeds.to(weights), weights, keys.detach().to(weights), model.cache_labels, scale, alpha, beta)
    return _accuracy(accelerator, logits, labels)


def _accuracies(accelerator, model, embeds, labels, training_free: tuple[torch.Tensor, float, float]) -> dict:
    """Zero-shot CLIP, the training-free Tip-Adapter (its keys, α, β) and the model as it is now, on one split."""
    now = (model.cache_keys, model.config.alpha, model.config.beta)
    return {
        "zero_shot_accuracy": _accuracy(accelerator, model.zero_shot_logits(embeds), labels),
        "tip_adapter_accuracy": _tip_accuracy(accelerator, model, embeds, labels, *training_free),
        "tip_adapter_f_accuracy": _tip_accuracy(accelerator, model, embeds, labels, *now),
    }


def _build_training_free(
    accelerator, model, images, labels: torch.Tensor, config: FinetuneConfig, val_embeds, val_labels
) -> None:
    """Make a zero-shot model (empty cache) a training-free Tip-Adapter, then search α/β on validation; then make
    keys and α/β bit-identical on every process.

    The cache keys are the mean of the raw features of views `0..E-1` (`E` = `augment_epochs`), encoded sharded
    across processes (`encode_view_bank`): the views `build_cache` draws on the same few-shot set in the same order,
    summed pass by pass and divided as it does. Training then starts at view `E`.
    """
    if model.cache_keys.shape[0] == 0:
        logger.info("Building the training-free Tip-Adapter cache from the few-shot set", main_process_only=True)
        epochs = config.augment_epochs or model.config.augment_epochs
        views = encode_view_bank(accelerator, model, images, epochs, config.seed, config.encode_batch_size)
        total = torch.zeros_like(views[0])
        for view in range(epochs):  # summed pass by pass, then divided, as `build_cache` does
            total += views[view]
        num_shots = config.num_shots or model.config.num_shots
        model.set_augmented_cache(total, epochs, labels, num_shots=num_shots, seed=config.seed)
        model.search_hyperparameters(val_embeds, val_labels)
    if accelerator.num_processes > 1:  # identical by construction; broadcast so that no rounding can differ
        with torch.no_grad():
            model.cache_keys.copy_(broadcast(model.cache_keys.detach().clone().contiguous()))
        model.config.alpha, model.config.beta = broadcast_object_list([model.config.alpha, model.config.beta])


# ----------------------------------------------------------------------------------------------------- the run
def finetune(
    model,
    dataset,
    config: FinetuneConfig | None = None,
    accelerator: Accelerator | None = None,
    on_step: Callable[[int], None] | None = None,
) -> dict:
    r"""
    Tip-Adapter-F: fine-tune the cache keys of `model` on a few-shot set of `dataset["train"]`, pick the best epoch
    on `dataset["validation"]`, search α/β again on it, and report the test split (if any) once, at the end.

    A model with an empty cache (fresh from `from_clip`) is first made a training-free Tip-Adapter: the keys
    `build_cache` would make from the same few-shot set (views `0..augment_epochs-1`, encoded sharded across
    processes), then `search_hyperparameters` on validation. Training draws views from `augment_epochs` on, never
    those of the cache. The training loss uses `config.alpha`/`config.beta`, else the α/β in `model.config` when
    `finetune` is called (the paper trains at its initial α/β); that α must be > 0. The model is modified in place:
    its keys become the fine-tuned parameter (`config.finetune_keys`), `config.alpha`/`beta` the searched values,
    and `model.card_data` describes the run. With `config.output_dir`, the model is saved there (`save_pretrained`)
    with `all_results.json`.

    Args:
        model ([`TipAdapterForImageClassification`]): with a processor (`model.processor`).
        dataset ([`~datasets.DatasetDict`]): `train` and `validation` splits, optionally `test`, whose class names
            (a `ClassLabel`) match the model's `id2label`.
        config ([`FinetuneConfig`], *optional*): hyper-parameters and outputs.
        accelerator ([`~accelerate.Accelerator`], *optional*): defaults to a new one (on CPU without CUDA).
        on_step (`Callable[[int], None]`, *optional*): called with the number of completed steps after each step
            (after that step's checkpoint and, at an epoch's end, its evaluation).

    Returns:
        `dict`: what `all_results.json` holds: `num_processes`, `best_epoch`, `eval_accuracy` (validation, final),
        `validation` and (given a test split) `test` accuracies of zero-shot CLIP, Tip-Adapter and Tip-Adapter-F,
        the same three at the top level for `eval_split`, `test_accuracy`, `train_runtime`, the per-epoch `history`.

    Example:

    ```python
    >>> from accelerate import Accelerator
    >>> from hf_tip.training import FinetuneConfig, finetune
    >>> results = finetune(model, dataset, FinetuneConfig(num_shots=16, output_dir="tip-adapter-f"), Accelerator())
    >>> results["eval_accuracy"], results["best_epoch"]
    ```
    """
    config = config if config is not None else FinetuneConfig()
    built_from = model.config.few_shot_seed if model.cache_keys.shape[0] else None  # the cache's few-shot sample
    if config.seed is None:  # train on the images the cache was built from
        config = replace(config, seed=built_from if built_from is not None else 1)
    elif built_from is not None and built_from != config.seed:
        warnings.warn(
            f"The cache was built from the few-shot sample of seed {built_from}, but fine-tuning samples seed "
            f"{config.seed}: its keys will be trained on other images. Leave the seed unset to use the cache's.",
            UserWarning,
            stacklevel=2,
        )
    accelerator = accelerator if accelerator is not None else Accelerator(cpu=not torch.cuda.is_available())
    started = time.perf_counter()
    check_dataset(model, dataset, config)
    check_output_dir(config)
    alpha = config.alpha if config.alpha is not None else model.config.alpha
    beta = config.beta if config.beta is not None else model.config.beta
    if not alpha > 0:
        raise ValueError(
            f"The training alpha is {alpha!r} (`FinetuneConfig.alpha` unset: the model's `config.alpha`): at 0 the "
            "cache term vanishes and the keys get no gradient. Pass `FinetuneConfig(alpha=...)` > 0 (`--alpha`)."
        )
    resume = (
        find_checkpoint(config.output_dir, config.resume_from_checkpoint) if config.resume_from_checkpoint else None
    )
    accelerator.wait_for_everyone()  # every process has checked the output folder before anything is written to it
    if accelerator.is_main_process and config.output_dir and resume is None:
        shutil.rmtree(Path(config.output_dir) / CHECKPOINTS_DIR, ignore_errors=True)  # a replaced run's checkpoints
    model.to(accelerator.device).eval()

    # validation features once; the training-free adapter; the few-shot set
    val_embeds, val_labels = encode_split(accelerator, model, dataset["validation"], config)
    images, labels = sample_training_set(model, dataset["train"], config)
    num_views = config.num_augmented_views or config.augment_epochs or model.config.augment_epochs
    _build_training_free(accelerator, model, images, labels, config, val_embeds, val_labels)
    training_free = (model.cache_keys.detach().clone(), model.config.alpha, model.config.beta)
    first_view = model.config.augment_epochs  # views 0..E-1 made the cache: training draws fresh ones after them
    bank = None  # the training views, encoded once
    if not config.online_augmentation:
        bank = encode_view_bank(
            accelerator, model, images, num_views, config.seed, config.encode_batch_size, first_view=first_view
        )

    # only the keys train, at the training α/β
    model.enable_key_finetuning()
    model.config.alpha, model.config.beta = alpha, beta
    train_batch_size = config.per_device_train_batch_size * accelerator.num_processes
    steps_per_epoch = math.ceil(len(labels) / train_batch_size)
    total_steps = steps_per_epoch * config.num_train_epochs
    optimizer, scheduler = create_optimizer_and_scheduler(model, config, total_steps)
    optimizer = accelerator.prepare(optimizer)
    signature = {
        "num_examples": len(labels), "train_batch_size": train_batch_size, "num_train_epochs": config.num_train_epochs,
        "seed": config.seed, "learning_rate": config.learning_rate, "alpha": alpha, "beta": beta,
        "augmentation": "online" if config.online_augmentation else f"bank of {num_views} views",
        "first_training_view": first_view,
    }  # fmt: skip
    progress = _Progress(model.cache_keys, signature)
    # The scheduler is registered, not prepared: a prepared one steps once per process at every step.
    accelerator.register_for_checkpointing(scheduler, progress)
    bar = tqdm(total=total_steps, desc="Tip-Adapter-F", unit="step", disable=not accelerator.is_local_main_process)

    def after_step(epoch_end: bool) -> None:
        every = config.checkpointing_steps
        if config.output_dir and (
            (every == "epoch" and epoch_end) or (isinstance(every, int) and progress.completed_steps % every == 0)
        ):
            name = f"epoch_{len(progress.history) - 1}" if every == "epoch" else f"step_{progress.completed_steps}"
            _save_checkpoint(accelerator, config.output_dir, name, progress)
        if on_step is not None:
            on_step(progress.completed_steps)

    def step_done(loss: float) -> None:
        progress.completed_steps += 1
        progress.epoch_losses.append(loss)
        bar.update(1)
        if progress.completed_steps % steps_per_epoch:  # an epoch's last step waits for the epoch's evaluation
            after_step(epoch_end=False)

    try:
        if resume is not None:
            logger.info(f"Resuming from {resume}", main_process_only=True)
            accelerator.load_state(str(resume))
            bar.update(progress.completed_steps)
        for epoch in range(progress.completed_steps // steps_per_epoch, config.num_train_epochs):
            train_epoch(
                accelerator, model, optimizer, scheduler, labels, epoch, train_batch_size=train_batch_size,
                seed=config.seed, feature_bank=bank, images=None if bank is not None else images,
                encode_batch_size=config.encode_batch_size, on_step=step_done, first_view=first_view,
                skip_steps=progress.completed_steps - epoch * steps_per_epoch,
            )  # fmt: skip
            accuracy = _tip_accuracy(accelerator, model, val_embeds, val_labels, model.cache_keys, alpha, beta)
            record = {
                "epoch": epoch,
                "train_loss": float(np.mean(progress.epoch_losses)),  # every step's, also across a resume
                "validation_accuracy": accuracy,
                "learning_rate": scheduler.get_last_lr()[0],
            }
            progress.history.append(record)
            progress.epoch_losses = []
            accelerator.log({k: v for k, v in record.items() if k != "epoch"}, step=epoch)
            if accuracy > progress.best_accuracy:  # the first best epoch wins
                progress.best_epoch, progress.best_accuracy = epoch, accuracy
                progress.best_keys = model.cache_keys.detach().clone()
            after_step(epoch_end=True)
    finally:
        bar.close()
        # forget what this run registered, and only that: the caller's models, optimizers, ... and step stay, and
        # the same accelerator can run `finetune` again
        accelerator._optimizers = [o for o in accelerator._optimizers if o is not optimizer]
        accelerator._custom_objects = [
            o for o in accelerator._custom_objects if o is not scheduler and o is not progress
        ]

    # the best validation epoch's keys, α/β searched again on validation
    with torch.no_grad():
        model.cache_keys.copy_(progress.best_keys)
    model.search_hyperparameters(val_embeds, val_labels)
    every_rank = accelerator.gather(model.cache_keys.detach()[None].contiguous())  # [P,NK,D]
    if not bool((every_rank == every_rank[:1]).all()):
        raise RuntimeError("The fine-tuned keys differ between processes; please report this as a bug.")

    results = {
        "num_processes": accelerator.num_processes, "num_shots": config.num_shots or model.config.num_shots,
        "num_examples": len(labels), "num_train_epochs": config.num_train_epochs, "train_batch_size": train_batch_size,
        "per_device_train_batch_size": config.per_device_train_batch_size, "augmentation": signature["augmentation"],
        "first_training_view": first_view,
        "train_alpha": alpha, "train_beta": beta, "tip_adapter_alpha": training_free[1],
        "tip_adapter_beta": training_free[2], "alpha": model.config.alpha, "beta": model.config.beta,
        "best_epoch": progress.best_epoch, "keys_identical_across_processes": True,
        "resumed_from": str(resume) if resume is not None else None, "history": progress.history,
    }  # fmt: skip
    results["validation"] = _accuracies(accelerator, model, val_embeds, val_labels, training_free)
    results["eval_accuracy"] = results["validation"]["tip_adapter_f_accuracy"]
    results["eval_split"] = "validation"
    if "test" in dataset:  # read once, now
        test_embeds, test_labels = encode_split(accelerator, model, dataset["test"], config)
        results["test"] = _accuracies(accelerator, model, test_embeds, test_labels, training_free)
        results["eval_split"], results["test_accuracy"] = "test", results["test"]["tip_adapter_f_accuracy"]
    results.update(results[results["eval_split"]])
    results["train_runtime"] = time.perf_counter() - started
    results["finetune_config"] = asdict(config)
    model.card_data.update(
        dataset_name=config.dataset_name, eval_split=results["eval_split"], num_shots=results["num_shots"],
        results=dict(results[results["eval_split"]]), command=config.command,
    )  # fmt: skip
    if config.output_dir:
        if accelerator.is_main_process:
            model.save_pretrained(config.output_dir)
            (Path(config.output_dir) / RESULTS_FILE).write_text(json.dumps(results, indent=2) + "\n")
        accelerator.wait_for_everyone()
    return results


__all__ = [
    "FinetuneConfig",
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
