"""Training-free adaptation on a `datasets.DatasetDict`, end to end: the library function behind `hf-tip build`,
`hf-tip demo` and `examples/reproduce_paper.py`.

One pipeline, one small function per step, each around the model's own methods so that any method class whose model
offers `fit(view_features, labels)`, `search_hyperparameters`, `zero_shot_logits` and `forward(image_embeds=...)` (the
`ZeroShotForImageClassification` hooks) runs unchanged:

    prepare_dataset (data entry: every check, before any work)
    -> build (sample -> encode augmented views [V,N,D] -> `model.fit`)
    -> search (on validation only: `model.search_hyperparameters`)
    -> score (test, read once, at the end)
    -> TrainingFreeResult (typed; `to_dict()` is `results.json`) and the model card data.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from transformers import CLIPModel, CLIPProcessor

from ..data.datasets import (
    check_columns,
    check_dataset,
    dataset_class_names,
    load_images,
    remap_labels,
    sample_few_shot,
)
from ..data.templates import DatasetPreset, unique_class_names
from ..models.features import iter_augmented_features, zero_shot_weights
from ..models.modeling_tip_adapter import TipAdapterForImageClassification
from ..models.names import check_class_names
from ..models.search import check_search_grid
from ..models.seeding import shuffle_keys
from .encoding import encode_dataset
from .evaluation import EVAL_SUBSAMPLE_SEED, compute_accuracy

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


# ----------------------------------------------------------------------------------------------------- results
def accuracy_key(method: str) -> str:
    """The results key of a method's accuracy: `"tip-adapter"` -> `"tip_adapter_accuracy"`."""
    return f"{method.replace('-', '_')}_accuracy"


@dataclass
class SplitScores:
    r"""
    Accuracies on one split, as fractions in [0, 1].

    Args:
        num_samples (`int`): images scored.
        zero_shot_accuracy (`float`): zero-shot CLIP (the text classifier alone).
        adapter_accuracy (`float`): the adapted model (`model(image_embeds=...).logits`).
        adapter_accuracy_before_search (`float`, *optional*):
            On validation: the adapted model with its initial hyper-parameters, before the search.
    """

    num_samples: int
    zero_shot_accuracy: float
    adapter_accuracy: float
    adapter_accuracy_before_search: float | None = None

    def to_dict(self, method: str = "tip-adapter") -> dict:
        """`{"zero_shot_accuracy", "<method>_accuracy", "num_samples"[, "<method>_accuracy_before_search"]}`."""
        key = accuracy_key(method)
        out = {
            "zero_shot_accuracy": self.zero_shot_accuracy,
            key: self.adapter_accuracy,
            "num_samples": self.num_samples,
        }
        if self.adapter_accuracy_before_search is not None:
            out[f"{key}_before_search"] = self.adapter_accuracy_before_search
        return out


@dataclass
class TrainingFreeResult:
    r"""
    What [`fit_training_free`] did and measured. Hyper-parameters are chosen on `validation`; `test` is scored once.

    Args:
        method (`str`): the model's `model_type`, e.g. `"tip-adapter"`.
        num_shots (`int`), seed (`int`): the few-shot sample (`seed` also seeds the augmentations).
        num_classes (`int`), class_names (`list[str]`): the model's classes, in label order.
        cache_size (`int`): entries in the cache (`num_shots x num_classes`, fewer with `allow_fewer_shots`).
        hyperparameters (`dict[str, float]`): the searched values, e.g. `{"alpha": 1.2, "beta": 5.5}`.
        validation ([`SplitScores`]): scores on the validation split (after the search).
        test ([`SplitScores`], *optional*): scores on the test split; `None` without one.
        search_space (`dict[str, list]`): the grid searched, e.g. `{"search_scale": [7, 3], "search_step": [200, 20]}`.
        augment_epochs (`int`, *optional*): augmented views per cache image.
        dataset_name (`str`, *optional*): the Hub dataset, when there is one.

    Example:

    ```python
    >>> result = fit_training_free(model, dataset, num_shots=16)
    >>> result.final.adapter_accuracy, result.hyperparameters["alpha"]
    >>> json.dumps(result.to_dict())  # results.json
    ```
    """

    method: str
    num_shots: int
    seed: int
    num_classes: int
    class_names: list[str]
    cache_size: int
    hyperparameters: dict[str, float]
    validation: SplitScores
    test: SplitScores | None = None
    search_space: dict[str, list] = field(default_factory=dict)
    augment_epochs: int | None = None
    dataset_name: str | None = None

    @classmethod
    def from_model(
        cls,
        model,
        num_shots: int,
        seed: int,
        hyperparameters: dict[str, float],
        validation: SplitScores,
        test: SplitScores | None = None,
        dataset_name: str | None = None,
    ) -> TrainingFreeResult:
        """The result of a run, with the classes, cache size, search space and views read from `model.config`."""
        config = model.config
        return cls(
            method=config.model_type,
            num_shots=num_shots,
            seed=seed,
            num_classes=config.num_labels,
            class_names=[config.id2label[i] for i in range(config.num_labels)],
            cache_size=getattr(config, "cache_size", 0),
            hyperparameters=hyperparameters,
            validation=validation,
            test=test,
            search_space={k: list(getattr(config, k)) for k in ("search_scale", "search_step") if hasattr(config, k)},
            augment_epochs=getattr(config, "augment_epochs", None),
            dataset_name=dataset_name,
        )

    @property
    def eval_split(self) -> str:
        """`"test"`, or `"validation"` without a test split (then the reported split also chose the values)."""
        return "test" if self.test is not None else "validation"

    @property
    def recipe(self) -> dict:
        """What the training-free fit resolved, under the key every results JSON records its recipe by (`finetune`,
        `compare` record their training recipe there): the shots, the views per image, the seed, the search grid."""
        return {
            "num_shots": self.num_shots,
            "augment_epochs": self.augment_epochs,
            "seed": self.seed,
            **{k: list(v) for k, v in self.search_space.items()},
        }

    @property
    def final(self) -> SplitScores:
        """The scores reported: test's, else validation's."""
        return self.test if self.test is not None else self.validation

    def to_dict(self) -> dict:
        """The flat dict written as `results.json` (keys as in earlier versions: `alpha`, `beta`, `search_scale`, ...,
        `validation` / `test` dicts, `eval_split`, `zero_shot_accuracy`, `<method>_accuracy`)."""
        final = self.final.to_dict(self.method)
        out = {
            "method": self.method,
            "dataset_name": self.dataset_name,
            "num_shots": self.num_shots,
            "seed": self.seed,
            "augment_epochs": self.augment_epochs,
            "cache_size": self.cache_size,
            "num_classes": self.num_classes,
            "class_names": list(self.class_names),
            **self.hyperparameters,
            **{k: list(v) for k, v in self.search_space.items()},
            "validation": self.validation.to_dict(self.method),
            "test": self.test.to_dict(self.method) if self.test is not None else None,
            "eval_split": self.eval_split,
            "recipe": self.recipe,
        }
        out["zero_shot_accuracy"] = final["zero_shot_accuracy"]
        out[accuracy_key(self.method)] = final[accuracy_key(self.method)]
        return out


# ------------------------------------------------------------------------------------------------------- steps
def subsample(split, max_samples: int | None, seed: int = EVAL_SUBSAMPLE_SEED, name: str = "max_samples"):
    """At most `max_samples` rows of a `datasets.Dataset`, picked by a seeded shuffle and kept in their order; a
    `ValueError` naming `name` (the caller's argument or flag) when `max_samples < 1`."""
    if max_samples is None:
        return split
    if isinstance(max_samples, bool) or not isinstance(max_samples, int) or max_samples < 1:
        raise ValueError(f"`{name}` must be an integer >= 1 (or unset for all rows), got {max_samples!r}.")
    if max_samples >= len(split):
        return split
    order = np.argsort(shuffle_keys(np.arange(len(split)), seed), kind="stable")[:max_samples]
    return split.select(np.sort(order).tolist())


def prepare_dataset(
    dataset,
    class_names: Sequence[str],
    *,
    image_column: str = "image",
    label_column: str = "label",
    class_mapping: dict[str, str] | Sequence[str] | None = None,
    max_eval_samples: int | None = None,
):
    r"""
    Data entry of [`fit_training_free`]: the one dataset check ([`~data.check_dataset`]), before any work. Requires
    `train` and `validation` splits with the two columns and at least one row each, with the same classes in every
    split, matched to the model's `class_names` by name (or by `class_mapping`); then keeps at most
    `max_eval_samples` rows of `validation` and `test` (seeded by [`EVAL_SUBSAMPLE_SEED`], as every command).

    Returns:
        `(dataset, label_map)`: the `datasets.DatasetDict` the pipeline reads, and the model's class index of each
        dataset label (`None` when label `i` is class `i`), to apply with [`~data.remap_labels`].
    """
    label_map = check_dataset(
        dataset,
        list(class_names),
        image_column=image_column,
        label_column=label_column,
        class_mapping=class_mapping,
        required_splits=("train", "validation"),
    )
    splits = dict(dataset.items())
    for name in ("validation", "test"):
        if name in splits:
            splits[name] = subsample(splits[name], max_eval_samples, name="max_eval_samples")
    return type(dataset)(splits), label_map


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
    r"""
    Normalised image features and labels of a split, through the model's own processor (eval transform, no
    augmentation); cached on disk as safetensors when `feature_cache_dir` is given (see [`~features.encode_dataset`]).
    `label_map` (from [`~data.check_dataset`]) turns the dataset's labels into the model's class indices.

    Returns:
        `image_embeds` (`torch.FloatTensor` of shape `[N, D]`) and `labels` (`torch.LongTensor` of shape `[N]`).
    """
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
    model.check_labels(labels)
    return embeds, labels


def sample(
    model,
    train_split,
    num_shots: int,
    *,
    seed: int = 1,
    label_column: str = "label",
    allow_fewer_shots: bool = False,
    label_map: Sequence[int] | None = None,
) -> tuple[list[int], torch.Tensor]:
    """The sample stage, one seeded scheme for every command: `num_shots` rows per class of `train_split`
    ([`~data.sample_few_shot`], nested in `num_shots`), as `(rows, labels [N])`, labels in the model's classes
    (`label_map` from [`~data.check_dataset`] applied, then checked against the model)."""
    class_names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    labels = remap_labels(train_split[label_column], label_map)
    model.check_labels(labels)  # before any encoding
    picked = sample_few_shot(labels.tolist(), num_shots, seed, class_names, allow_fewer_shots)
    return picked, labels[picked]


def encode_views(
    model,
    images: Sequence,
    augment_epochs: int,
    *,
    seed: int = 1,
    batch_size: int = 32,
    show_progress: bool = True,
    indices: Sequence[int] | None = None,
    first_view: int = 0,
) -> torch.Tensor:
    """The views stage: raw (unnormalised) features `[V, N, D]` of views `first_view .. first_view + V - 1`
    (`V = augment_epochs`) of each image, view `v` of image `i` drawn from `(seed, v, indices[i])` (`i` itself without
    `indices`) as [`~features.iter_augmented_features`] does (the paper's cache protocol)."""
    size, mean, std = model.image_geometry()
    views = torch.zeros(augment_epochs, len(images), model.feature_dim)
    for view, start, feats in iter_augmented_features(
        model.clip, images, augment_epochs, size, mean, std, seed=seed, batch_size=batch_size,
        show_progress=show_progress, indices=indices, first_epoch=first_view,
    ):  # fmt: skip
        views[view - first_view, start : start + feats.shape[0]] = feats
    return views


def build(
    model,
    train_split,
    *,
    num_shots: int,
    seed: int = 1,
    augment_epochs: int | None = None,
    image_column: str = "image",
    label_column: str = "label",
    allow_fewer_shots: bool = False,
    batch_size: int = 32,
    show_progress: bool = True,
    label_map: Sequence[int] | None = None,
):
    """Sample -> encode -> fit: `num_shots` examples per class of `train_split` (seeded by `seed`), their augmented
    views `[V, N, D]` ([`encode_views`]), then the model's own `fit(view_features, labels, num_shots=, seed=)`, which
    records that provenance. Any method model with a training-free `fit` builds here. `label_map` (from
    [`~data.check_dataset`]) turns the dataset's labels into the model's class indices before the sample is drawn."""
    picked, labels = sample(
        model,
        train_split,
        num_shots,
        seed=seed,
        label_column=label_column,
        allow_fewer_shots=allow_fewer_shots,
        label_map=label_map,
    )
    shots = train_split.select(picked)
    epochs = model.config.augment_epochs if augment_epochs is None else augment_epochs
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"`augment_epochs` must be an integer >= 1, got {epochs!r}.")
    views = encode_views(
        model, load_images(shots, image_column), epochs, seed=seed, batch_size=batch_size, show_progress=show_progress
    )
    return model.fit(views, labels, num_shots=num_shots, seed=seed)


def search(
    model: TipAdapterForImageClassification,
    image_embeds: torch.Tensor,
    labels: torch.Tensor,
    **search_space,
) -> dict[str, float]:
    r"""
    Choose the hyper-parameters on validation features `[N, D]` and labels `[N]` by the model's own
    `search_hyperparameters`, which writes the chosen values into the config; the search space given (e.g.
    `search_scale`, `search_step`; `None` entries mean the config's) is recorded in the config only once the search
    succeeded.

    Returns:
        `dict[str, float]`: the chosen values (e.g. `alpha`, `beta`): the search's scalar results that are config
        fields (not its `accuracy` or other diagnostics).
    """
    given = {k: v for k, v in search_space.items() if v is not None}
    searched = model.search_hyperparameters(image_embeds, labels, **given)
    for key, value in given.items():
        setattr(model.config, key, list(value))
    # the chosen values are the scalars the search wrote into the config (not its accuracy or other diagnostics)
    return {k: float(v) for k, v in searched.items() if hasattr(model.config, k) and isinstance(v, (int, float))}


@torch.no_grad()
def score(model: TipAdapterForImageClassification, image_embeds: torch.Tensor, labels: torch.Tensor) -> SplitScores:
    """Zero-shot and adapted accuracy (fractions in [0, 1], via `evaluate`) on features [N,D] with labels [N]."""
    return SplitScores(
        num_samples=int(labels.shape[0]),
        zero_shot_accuracy=compute_accuracy(model.zero_shot_logits(image_embeds), labels),
        adapter_accuracy=compute_accuracy(model(image_embeds=image_embeds).logits, labels),
    )


def record_card_data(model, result: TrainingFreeResult, command: str | None = None) -> None:
    """What the model card reports about this run (`model.card_data`)."""
    final = result.final  # the card reports the final accuracies only (not the before-search diagnostic)
    model.card_data.update(
        {
            "dataset_name": result.dataset_name,
            "eval_split": result.eval_split,
            "num_shots": result.num_shots,
            "results": {
                "zero_shot_accuracy": final.zero_shot_accuracy,
                accuracy_key(result.method): final.adapter_accuracy,
            },
            "command": command,
        }
    )


# ---------------------------------------------------------------------------------------------------- pipeline
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
) -> TrainingFreeResult:
    r"""
    Training-free adaptation on a `DatasetDict`: sample `num_shots` per class from `train` and build the augmented
    cache, search the hyper-parameters on `validation`, then score zero-shot CLIP and the model on `test` (read
    once, at the end). Every argument and the dataset are checked before any work.

    Args:
        model ([`TipAdapterForImageClassification`]): a model from `from_clip` / [`create_adapter`] (its classes
            match the dataset's by name, in any order); its cache, `alpha`, `beta`, `num_shots`, `augment_epochs` are set here.
        dataset (`datasets.DatasetDict`): `train` and `validation` splits (and usually `test`) with an image and an
            integer label column.
        num_shots (`int`, *optional*, defaults to 16): examples per class in the cache.
        seed (`int`, *optional*, defaults to 1): seeds the few-shot sampling and the augmentations (the
            `max_eval_samples` subsets are seeded by [`~evaluation.EVAL_SUBSAMPLE_SEED`], as in every command).
        augment_epochs (`int`, *optional*): augmented views per cache image; defaults to the model config's.
        image_column, label_column (`str`, *optional*): column names.
        feature_cache_dir (`str`, *optional*): where validation/test features are stored as safetensors and reused.
        search_scale (`tuple[float, float]`, *optional*): `(beta_max, alpha_max)`; defaults to the config's.
        search_step (`tuple[int, int]`, *optional*): `(n_beta, n_alpha)`; defaults to the config's.
        allow_fewer_shots (`bool`, *optional*): take what there is for classes with fewer than `num_shots` examples.
        max_eval_samples (`int`, *optional*): score on at most this many validation and test rows each.
        batch_size (`int`, *optional*, defaults to 64): images per forward pass when encoding.
        show_progress (`bool`, *optional*, defaults to `True`): tqdm bars while encoding.
        dataset_name (`str`, *optional*): recorded in the results and the model card.
        command (`str`, *optional*): the command line that ran this, for the model card (already redacted).
        class_mapping (`dict[str, str]` or `list[str]`, *optional*): how the dataset's classes map to the model's
            when their names differ (see [`~data.align_labels`]); by default they are matched by name.

    Returns:
        [`TrainingFreeResult`]; its `to_dict()` is `results.json`. The same numbers go into `model.card_data`.
    """
    # data entry: the grid and the dataset are checked before anything is built or written
    if search_scale is not None or search_step is not None:
        defaults = getattr(model.config, "search_scale", (7.0, 3.0)), getattr(model.config, "search_step", (200, 20))
        check_search_grid(search_scale or defaults[0], search_step or defaults[1])
    dataset, label_map = prepare_dataset(
        dataset, [model.config.id2label[i] for i in range(model.config.num_labels)], image_column=image_column,
        label_column=label_column, class_mapping=class_mapping, max_eval_samples=max_eval_samples,
    )  # fmt: skip
    columns = {"image_column": image_column, "label_column": label_column, "label_map": label_map}
    encode = dict(columns, feature_cache_dir=feature_cache_dir, batch_size=batch_size, show_progress=show_progress)

    build(
        model, dataset["train"], num_shots=num_shots, augment_epochs=augment_epochs, seed=seed,
        allow_fewer_shots=allow_fewer_shots, show_progress=show_progress, **columns,
    )  # fmt: skip

    val_embeds, val_labels = encode_split(model, dataset["validation"], **encode)
    before = compute_accuracy(model(image_embeds=val_embeds).logits, val_labels)
    hyperparameters = search(model, val_embeds, val_labels, search_scale=search_scale, search_step=search_step)
    validation = score(model, val_embeds, val_labels)
    validation.adapter_accuracy_before_search = before

    test = score(model, *encode_split(model, dataset["test"], **encode)) if "test" in dataset else None
    if test is None:
        logger.warning("No `test` split: the reported accuracy is on the validation split that chose alpha/beta.")

    result = TrainingFreeResult.from_model(model, num_shots, seed, hyperparameters, validation, test, dataset_name)
    record_card_data(model, result, command)
    return result


__all__ = [
    "SplitScores",
    "TrainingFreeResult",
    "build",
    "create_adapter",
    "encode_split",
    "encode_views",
    "fit_training_free",
    "prepare_dataset",
    "record_card_data",
    "resolve_class_names",
    "sample",
    "score",
    "search",
    "subsample",
]
