"""The pipeline's stages sharded across Accelerate processes (what `hf-tip finetune` composes): the few-shot sample,
its augmented views (a feature bank encoded once, or one view of a batch re-encoded online), a split's features and
the training-free fit a trained Tip-Adapter starts from. Each process encodes a contiguous shard, then all gather.

View `v` of image `i` is drawn from `features.view_generator(seed, v, i)`, so 1 and N processes encode the same
features. The single-process stages are in [`~pipeline.procedure`]; these call them (`encode_split`, `sample_few_shot`,
`model.fit`) on a shard instead of copying them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.utils import broadcast, broadcast_object_list, gather_object
from PIL import Image

from ..data import datasets as data
from ..data.datasets import load_images
from ..training.args import FinetuneConfig
from . import procedure

logger = get_logger(__name__)


def config_label_map(model, config: FinetuneConfig) -> list[int] | None:
    """The model's class of each dataset label under `config.class_names` (`None`: the same indices)."""
    if config.class_names is None:
        return None
    names = [str(n) for n in config.class_names]
    return data.align_labels(
        names,
        [model.config.id2label[i] for i in range(len(model.config.id2label))],
        names,
        mapping_argument="`class_names`",
    )


def sample_training_set(model, train_dataset, config: FinetuneConfig) -> tuple[list[Image.Image], torch.Tensor]:
    """The few-shot images and labels [N] (`num_shots` per class, seeded), in class order: the pipeline's sample
    stage ([`~procedure.sample`]), labels in the model's classes (`config.class_names` maps the dataset's)."""
    picked, labels = procedure.sample(
        model, train_dataset, config.num_shots or model.config.num_shots, seed=config.seed,
        label_column=config.label_column, allow_fewer_shots=config.allow_fewer_shots,
        label_map=config_label_map(model, config),
    )  # fmt: skip
    return load_images(train_dataset.select(picked), config.image_column), labels


def shard(accelerator: Accelerator, items: Sequence[int]) -> list[int]:
    """This process's contiguous slice of `items` (the first processes take one more when it does not divide)."""
    with accelerator.split_between_processes(list(items)) as part:
        return list(part)


def gather(accelerator: Accelerator, local: torch.Tensor, dim: int = 0) -> torch.Tensor:
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
    Raw image features `[V, N, D]` (float32) of views `first_view .. first_view + num_views - 1` of every image,
    encoded once: each process encodes a contiguous shard, then all gather. View `v` of image `i` comes from
    `view_generator(seed, v, i)`, so the bank is the same whatever the number of processes. Views `0..E-1` are the
    cache's (`build_cache` with `augment_epochs=E`); Tip-Adapter-F trains on a bank with `first_view=E`.
    """
    part = shard(accelerator, range(len(images)))
    with accelerator.autocast():
        local = procedure.encode_views(
            model, [images[i] for i in part], num_views, seed=seed, batch_size=batch_size,
            show_progress=accelerator.is_local_main_process, indices=part, first_view=first_view,
        )  # fmt: skip
    return gather(accelerator, local, dim=1).to(accelerator.device)


def encode_views(
    accelerator: Accelerator,
    model,
    images: Sequence[Image.Image],
    indices: Sequence[int],
    view: int,
    seed: int = 1,
    batch_size: int = 64,
) -> torch.Tensor:
    """Raw image features `[b, D]` of view `view` of `images[i]` for `i` in `indices` (the bank's views)."""
    with accelerator.autocast():
        out = procedure.encode_views(
            model, [images[i] for i in indices], 1, seed=seed, batch_size=batch_size, show_progress=False,
            indices=indices, first_view=view,
        )[0]  # fmt: skip
    return out.to(accelerator.device)


def encode_split(
    accelerator: Accelerator, model, dataset, config: FinetuneConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """L2-normalised features [N,D] and labels [N] of a split (eval transform, `procedure.encode_split`), sharded
    across processes and gathered; on the accelerator's device."""
    part = shard(accelerator, range(len(dataset)))
    embeds, labels = torch.zeros(0, model.zero_shot_weights.shape[1]), torch.zeros(0, dtype=torch.long)
    if part:
        with accelerator.autocast():
            embeds, labels = procedure.encode_split(
                model,
                dataset.select(part),
                image_column=config.image_column,
                label_column=config.label_column,
                feature_cache_dir=config.feature_cache_dir,
                batch_size=config.encode_batch_size,
                show_progress=accelerator.is_local_main_process,
                label_map=config_label_map(model, config),
            )
    device = accelerator.device
    return gather(accelerator, embeds).to(device), gather(accelerator, labels).to(device)


def build_training_free(accelerator, model, images, labels, config: FinetuneConfig, val_embeds, val_labels):
    """For a Tip-Adapter: make a zero-shot one (empty cache) a training-free Tip-Adapter (keys: the mean of the raw
    features of views `0..E-1`, encoded sharded, as `build_cache` makes them; α/β searched on validation), make keys
    and α/β bit-identical on every process, and return `(keys, alpha, beta)`. Other heads: `None`."""
    if not hasattr(model, "cache_keys"):
        return None
    if model.cache_keys.shape[0] == 0:
        logger.info("Building the training-free Tip-Adapter cache from the few-shot set", main_process_only=True)
        epochs = config.augment_epochs or model.config.augment_epochs
        views = encode_view_bank(accelerator, model, images, epochs, config.seed, config.encode_batch_size)
        model.fit(views, labels, num_shots=config.num_shots or model.config.num_shots, seed=config.seed)
        model.search_hyperparameters(val_embeds, val_labels)
    if accelerator.num_processes > 1:  # identical by construction; broadcast so that no rounding can differ
        with torch.no_grad():
            model.cache_keys.copy_(broadcast(model.cache_keys.detach().clone().contiguous()))
        model.config.alpha, model.config.beta = broadcast_object_list([model.config.alpha, model.config.beta])
    return model.cache_keys.detach().clone(), model.config.alpha, model.config.beta


__all__ = [
    "build_training_free",
    "config_label_map",
    "encode_split",
    "encode_view_bank",
    "encode_views",
    "gather",
    "sample_training_set",
    "shard",
]
