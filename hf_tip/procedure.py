"""Training-free Tip-Adapter on a `datasets.DatasetDict`, end to end: the library function behind `hf-tip build`,
`hf-tip demo` and `examples/reproduce_paper.py`.

Validation picks, test reports: α/β are searched on the validation split only, and the test split is encoded and
scored once, at the end.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np
import torch
from transformers import CLIPModel, CLIPProcessor

from .data import check_class_names, check_columns, check_dataset, dataset_class_names, remap_labels, shuffle_keys
from .evaluation import compute_accuracy
from .features import encode_dataset, zero_shot_weights
from .modeling_tip_adapter import TipAdapterForImageClassification
from .templates import DatasetPreset, unique_class_names

logger = logging.getLogger(__name__)


def resolve_class_names(
    dataset,
    label_column: str = "label",
    class_names: Sequence[str] | None = None,
    preset: DatasetPreset | None = None,
) -> tuple[list[str], list[str]]:
    r"""
    The class names of a dataset, as `(labels, prompt_names)` in label order.

    Args:
        dataset (`datasets.DatasetDict` or `datasets.Dataset`):
            Its label column should be a `ClassLabel`; every split must carry the same names.
        label_column (`str`, *optional*, defaults to `"label"`): the label column.
        class_names (`list[str]`, *optional*):
            Names overriding the dataset's (`--class_names`); required when the label column has no `ClassLabel`.
        preset ([`~templates.DatasetPreset`], *optional*):
            Renames the dataset's names as the paper's runs did (not applied to an explicit `class_names`).

    Returns:
        `labels` (unique, for `id2label`) and `prompt_names` (what the prompts say; they differ only where two
        classes share a prompt name, as two pairs of ImageNet's do).
    """
    splits = dict(dataset.items()) if hasattr(dataset, "items") else {"dataset": dataset}
    found: dict[str, list[str]] = {}
    for split, data in splits.items():
        check_columns(data, label_column)
        names = dataset_class_names(data, label_column)
        if names is not None:
            found[split] = names
    reference = next(iter(found.items()), None)
    for split, names in found.items():
        if names != reference[1]:
            raise ValueError(
                f"Splits `{reference[0]}` and `{split}` have different classes in column {label_column!r}: "
                f"{reference[1]} vs {names}. Use folders with the same class sub-folders in every split."
            )
    if class_names is not None:
        names = check_class_names(class_names)
        if reference is not None and len(names) != len(reference[1]):
            raise ValueError(
                f"`class_names` has {len(names)} entries {names}, but the dataset has {len(reference[1])} classes "
                f"{reference[1]}; pass one name per class, in label order."
            )
    elif reference is not None:
        names = preset.clean_class_names(reference[1]) if preset is not None else list(reference[1])
    else:
        raise ValueError(
            f"The label column {label_column!r} carries no class names (it is not a `ClassLabel`); pass "
            "`class_names` (`--class_names`), one per label index."
        )
    if not names:
        raise ValueError(f"The label column {label_column!r} names no classes.")
    return unique_class_names(names), names


def create_adapter(
    backbone: str | os.PathLike | CLIPModel,
    class_names: Sequence[str],
    *,
    templates: Sequence[str] | None = None,
    prompt_names: Sequence[str] | None = None,
    processor: CLIPProcessor | None = None,
    **config_kwargs,
) -> TipAdapterForImageClassification:
    r"""
    A zero-shot Tip-Adapter (empty cache) from a CLIP backbone, via [`TipAdapterForImageClassification.from_clip`].

    Args:
        backbone (`str`, `os.PathLike` or [`CLIPModel`]): a Hub id or folder of a CLIP checkpoint, or a loaded model.
        class_names (`list[str]`): unique labels, in label order (they become `id2label`).
        templates (`list[str]`, *optional*): prompt templates with one `{}` each.
        prompt_names (`list[str]`, *optional*):
            What the prompts call each class, when it differs from its label (ImageNet's repeated names).
        processor ([`CLIPProcessor`], *optional*): required with a loaded `CLIPModel`.
        config_kwargs: other [`TipAdapterConfig`] arguments (`alpha`, `beta`, `search_scale`, ...).
    """
    model = TipAdapterForImageClassification.from_clip(
        backbone, class_names, templates=templates, processor=processor, **config_kwargs
    )
    if prompt_names is not None and list(prompt_names) != list(class_names):
        if len(prompt_names) != len(class_names):
            raise ValueError(f"Got {len(prompt_names)} prompt names for {len(class_names)} classes.")
        weights = zero_shot_weights(
            model.clip, model.processor.tokenizer, [c.replace("_", " ") for c in prompt_names], model.config.templates
        )
        model.zero_shot_weights.copy_(weights)
    return model


def subsample(split, max_samples: int | None, seed: int = 1):
    """At most `max_samples` rows of a `datasets.Dataset`, picked by a seeded shuffle and kept in their order."""
    if max_samples is None or max_samples >= len(split):
        return split
    if max_samples < 1:
        raise ValueError(f"`max_samples` must be >= 1, got {max_samples}.")
    order = np.argsort(shuffle_keys(np.arange(len(split)), seed), kind="stable")[:max_samples]
    return split.select(np.sort(order).tolist())


def encode_split(
    model: TipAdapterForImageClassification,
    split,
    *,
    image_column: str = "image",
    label_column: str = "label",
    feature_cache_dir: str | os.PathLike | None = None,
    batch_size: int = 64,
    show_progress: bool = True,
    label_map: Sequence[int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised CLIP features [N,D] and labels [N] of a split through the model's processor, cached on disk when
    `feature_cache_dir` is given (see [`~features.encode_dataset`]); `label_map` (from [`~data.check_dataset`]) turns
    the dataset's labels into the model's class indices."""
    if model.processor is None:
        raise ValueError("The model has no processor (`model.processor`); load it from a folder that holds one.")
    check_columns(split, image_column, label_column)
    embeds, labels = encode_dataset(
        model.clip,
        model.processor.image_processor,
        split,
        image_column=image_column,
        label_column=label_column,
        batch_size=batch_size,
        cache_dir=feature_cache_dir,
        show_progress=show_progress,
    )
    labels = remap_labels(labels, label_map)
    model._check_labels(labels)
    return embeds, labels


@torch.no_grad()
def score(model: TipAdapterForImageClassification, image_embeds: torch.Tensor, labels: torch.Tensor) -> dict:
    """Zero-shot CLIP and Tip-Adapter accuracy (fractions in [0, 1], via `evaluate`) on features [N,D]."""
    return {
        "zero_shot_accuracy": compute_accuracy(model.zero_shot_logits(image_embeds), labels),
        "tip_adapter_accuracy": compute_accuracy(model(image_embeds=image_embeds).logits, labels),
        "num_samples": int(labels.shape[0]),
    }


def fit_training_free(
    model: TipAdapterForImageClassification,
    dataset,
    *,
    num_shots: int = 16,
    seed: int = 1,
    augment_epochs: int | None = None,
    image_column: str = "image",
    label_column: str = "label",
    feature_cache_dir: str | os.PathLike | None = None,
    search_scale: tuple[float, float] | None = None,
    search_step: tuple[int, int] | None = None,
    allow_fewer_shots: bool = False,
    max_eval_samples: int | None = None,
    batch_size: int = 64,
    show_progress: bool = True,
    dataset_name: str | None = None,
    command: str | None = None,
    class_mapping: dict[str, str] | Sequence[str] | None = None,
) -> dict:
    r"""
    Training-free Tip-Adapter on a `DatasetDict`: sample `num_shots` per class from `train` and build the augmented
    cache, search α/β on `validation`, then score zero-shot CLIP and Tip-Adapter on `test` (read once, at the end).

    Args:
        model ([`TipAdapterForImageClassification`]): a model from `from_clip` / [`create_adapter`] (its classes in
            the dataset's label order); its cache, `alpha`, `beta`, `num_shots`, `augment_epochs` are set here.
        dataset (`datasets.DatasetDict`): `train` and `validation` splits (and usually `test`) with an image and an
            integer label column.
        num_shots (`int`, *optional*, defaults to 16): examples per class in the cache.
        seed (`int`, *optional*, defaults to 1): seeds the few-shot sampling and the augmentations.
        augment_epochs (`int`, *optional*): augmented views per cache image; defaults to the model config's.
        image_column, label_column (`str`, *optional*): column names.
        feature_cache_dir (`str`, *optional*): where validation/test features are stored as safetensors and reused.
        search_scale (`tuple[float, float]`, *optional*): `(beta_max, alpha_max)`; defaults to the config's.
        search_step (`tuple[int, int]`, *optional*): `(n_beta, n_alpha)`; defaults to the config's.
        allow_fewer_shots (`bool`, *optional*): take what there is for classes with fewer than `num_shots` examples.
        max_eval_samples (`int`, *optional*): score on at most this many (seeded) validation and test rows each.
        batch_size (`int`, *optional*, defaults to 64): images per forward pass when encoding.
        show_progress (`bool`, *optional*, defaults to `True`): tqdm bars while encoding.
        dataset_name (`str`, *optional*): recorded in the results and the model card.
        command (`str`, *optional*): the command line that ran this, for the model card.
        class_mapping (`dict[str, str]` or `list[str]`, *optional*): how the dataset's classes map to the model's
            when their names differ (see [`~data.align_labels`]); by default they are matched by name.

    Returns:
        `dict` with `dataset_name`, `num_shots`, `seed`, `augment_epochs`, `cache_size`, `num_classes`, `alpha`,
        `beta`, `search_scale`, `search_step`, `validation` and `test` (each `zero_shot_accuracy`,
        `tip_adapter_accuracy` and `num_samples`; `validation` also `tip_adapter_accuracy_before_search`; `test` is
        `None` without a test split), `eval_split` (`"test"`, or `"validation"` without one) and the
        `zero_shot_accuracy` / `tip_adapter_accuracy` on it. Accuracies are fractions in [0, 1]. The same numbers
        go into `model.card_data`.
    """
    label_map = check_dataset(
        dataset,
        [model.config.id2label[i] for i in range(model.num_classes)],
        image_column=image_column,
        label_column=label_column,
        class_mapping=class_mapping,
        required_splits=("train", "validation"),
    )
    encode = dict(
        image_column=image_column,
        label_column=label_column,
        feature_cache_dir=feature_cache_dir,
        batch_size=batch_size,
        show_progress=show_progress,
        label_map=label_map,
    )

    model.build_cache(
        dataset["train"],
        num_shots=num_shots,
        augment_epochs=augment_epochs,
        seed=seed,
        image_column=image_column,
        label_column=label_column,
        allow_fewer_shots=allow_fewer_shots,
        show_progress=show_progress,
        class_mapping=class_mapping,
    )

    val_embeds, val_labels = encode_split(model, subsample(dataset["validation"], max_eval_samples, seed), **encode)
    before = compute_accuracy(model(image_embeds=val_embeds).logits, val_labels)
    if search_scale is not None:
        model.config.search_scale = [float(v) for v in search_scale]
    if search_step is not None:
        model.config.search_step = [int(v) for v in search_step]
    searched = model.search_hyperparameters(val_embeds, val_labels)
    validation = {**score(model, val_embeds, val_labels), "tip_adapter_accuracy_before_search": before}

    test = None
    if "test" in dataset:
        test = score(model, *encode_split(model, subsample(dataset["test"], max_eval_samples, seed), **encode))
    eval_split, final = ("test", test) if test is not None else ("validation", validation)
    if test is None:
        logger.warning("No `test` split: the reported accuracy is on the validation split that chose alpha/beta.")

    results = {
        "dataset_name": dataset_name,
        "num_shots": num_shots,
        "seed": seed,
        "augment_epochs": model.config.augment_epochs,
        "cache_size": model.config.cache_size,
        "num_classes": model.num_classes,
        "alpha": searched["alpha"],
        "beta": searched["beta"],
        "search_scale": list(model.config.search_scale),
        "search_step": list(model.config.search_step),
        "validation": validation,
        "test": test,
        "eval_split": eval_split,
        "zero_shot_accuracy": final["zero_shot_accuracy"],
        "tip_adapter_accuracy": final["tip_adapter_accuracy"],
    }
    model.card_data.update(
        {
            "dataset_name": dataset_name,
            "eval_split": eval_split,
            "num_shots": num_shots,
            "results": {
                "zero_shot_accuracy": final["zero_shot_accuracy"],
                "tip_adapter_accuracy": final["tip_adapter_accuracy"],
            },
            "command": command,
        }
    )
    return results


__all__ = ["create_adapter", "encode_split", "fit_training_free", "resolve_class_names", "score", "subsample"]
