"""Every hf-tip method on the same few-shot samples and the same validation / test splits: [`compare_methods`].

What is shared, and encoded once:
- the backbone, its processor and the zero-shot text weights `W` `[C,D]` (every method's model reuses them);
- the validation and test features `[N,D]` (eval transform), encoded once for all methods, seeds and shot counts;
- per seed, the augmented views `[V,N,D]` of the largest few-shot set. The sampling is nested (the `K`-shot set of
  a seed is contained in its `K+1`-shot set, see [`~data.sample_few_shot`]) and view `v` of dataset image `i` is
  drawn from `view_generator(seed, v, i)`, so the views of every smaller `K` are an exact slice of them.

Per run (method, seed, shots): training-free heads `model.fit(views, labels)` then
`model.search_hyperparameters(val_embeds, val_labels)`; trained heads (`tip-adapter-f`, `clip-adapter`) start the
same way, then train the parameters they enable (`enable_training()`) with the training module's loop on a feature
bank of later views (`train_epoch`), keep the best validation epoch and search again on validation. The test split
is scored once per fitted model, after every validation choice is made.
"""

from __future__ import annotations

import dataclasses
import math
import os
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from ..data.datasets import remap_labels, sample_few_shot
from ..data.templates import DatasetPreset, get_preset

# `procedure`, `loading` and `evaluation` import `datasets` / `evaluate`: imported where used, so that
# `import hf_tip` stays light.

# method name -> (class name exported by `hf_tip`, trained)
METHODS: dict[str, tuple[str, bool]] = {
    "zero-shot": ("ZeroShotForImageClassification", False),
    "linear-probe": ("LinearProbeForImageClassification", False),
    "clip-adapter": ("ClipAdapterForImageClassification", True),
    "tip-adapter": ("TipAdapterForImageClassification", False),
    "tip-adapter-f": ("TipAdapterForImageClassification", True),
    "tip-x": ("TipXForImageClassification", False),
    "gda": ("GDAForImageClassification", False),
}
METHOD_LABELS = {
    "zero-shot": "Zero-shot CLIP",
    "linear-probe": "Linear probe",
    "clip-adapter": "CLIP-Adapter",
    "tip-adapter": "Tip-Adapter",
    "tip-adapter-f": "Tip-Adapter-F",
    "tip-x": "TIP-X",
    "gda": "GDA",
}
# the methods that take a preset's Tip-Adapter settings (initial alpha/beta, grid)
TIP_FAMILY = ("tip-adapter", "tip-adapter-f")


def check_methods(methods: Sequence[str] | None) -> list[str]:
    """The method names, in the order given (default: all seven); raises a `ValueError` listing the valid names for
    an unknown or repeated one, or one whose class this version of hf_tip lacks."""
    names = list(METHODS) if methods is None else [str(m) for m in methods]
    unknown = [m for m in names if m not in METHODS]
    if unknown or not names:
        raise ValueError(f"Unknown method(s) {unknown or names}; the methods are: {', '.join(METHODS)}.")
    repeated = sorted({m for m in names if names.count(m) > 1})
    if repeated:
        raise ValueError(f"Method(s) {repeated} are listed more than once in `methods`.")
    for name in names:
        method_class(name)
    return names


def method_class(name: str) -> type:
    """The model class of a method name (e.g. `"gda"` -> `GDAForImageClassification`)."""
    import hf_tip

    class_name = METHODS[name][0]
    cls = getattr(hf_tip, class_name, None)
    if cls is None:
        raise ValueError(f"The method {name!r} needs `hf_tip.{class_name}`, which this version of hf-tip lacks.")
    return cls


@dataclass
class CompareConfig:
    r"""
    What [`compare_methods`] runs.

    Args:
        methods (`list[str]`, *optional*): any of `zero-shot`, `linear-probe`, `clip-adapter`, `tip-adapter`,
            `tip-adapter-f`, `tip-x`, `gda` (default: all seven).
        seeds (`list[int]`, *optional*, defaults to `[1, 2, 3]`): few-shot samples (and augmentations).
        num_shots (`list[int]`, *optional*, defaults to `[1, 2, 4, 8, 16]`): examples per class.
        augment_epochs (`int`, *optional*, defaults to `10`): augmented views of each few-shot image that the
            training-free heads fit on (Tip-Adapter averages them into its keys).
        num_train_views (`int`, *optional*): views `augment_epochs ..` in the feature bank the trained heads train on
            (default: each method's recipe, `num_augmented_views`: CLIP-Adapter 10; Tip-Adapter-F `augment_epochs`).
        num_train_epochs (`int`, *optional*): epochs of every trained head (default: each method's recipe).
        template_set (`str`, *optional*): a dataset preset of `hf_tip.data.templates` (templates, class renames,
            Tip-Adapter's initial α/β and grid, Tip-Adapter-F's epochs).
        templates (`list[str]`, *optional*): prompt templates (override the preset's).
        class_names (`list[str]`, *optional*): class names in label order (override the dataset's).
        method_config (`dict[str, dict]`, *optional*): extra config arguments per method, e.g.
            `{"tip-adapter": {"search_step": [20, 10]}}`.
        image_column, label_column (`str`, *optional*): the dataset's columns.
        max_eval_samples (`int`, *optional*): at most this many (seeded) validation and test images each.
        feature_cache_dir (`str`, *optional*): store the validation / test features as safetensors and reuse them.
        batch_size (`int`, *optional*, defaults to `64`): images per forward pass of the backbone.
        allow_fewer_shots (`bool`, *optional*): take all images of classes with fewer than the shots asked.
        save_models_dir (`str`, *optional*): keep every fitted model as `DIR/<method>/shots<K>-seed<S>`.
        show_progress (`bool`, *optional*, defaults to `True`): tqdm bars.
    """

    methods: list[str] | None = None
    seeds: list[int] = field(default_factory=lambda: [1, 2, 3])
    num_shots: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16])
    augment_epochs: int = 10
    num_train_views: int | None = None
    num_train_epochs: int | None = None
    template_set: str | None = None
    templates: list[str] | None = None
    class_names: list[str] | None = None
    method_config: dict[str, dict[str, Any]] = field(default_factory=dict)
    image_column: str = "image"
    label_column: str = "label"
    max_eval_samples: int | None = None
    feature_cache_dir: str | None = None
    batch_size: int = 64
    allow_fewer_shots: bool = False
    save_models_dir: str | None = None
    show_progress: bool = True
    label_map: list[int] | None = field(default=None, repr=False)  # set by the dataset check, not an input

    def __post_init__(self):
        self.methods = check_methods(self.methods)
        for name in ("seeds", "num_shots"):
            values = list(getattr(self, name))
            if not values or any(isinstance(v, bool) or not isinstance(v, int) for v in values):
                raise ValueError(f"`{name}` must be a non-empty list of integers, got {values!r}.")
            if len(set(values)) != len(values):
                raise ValueError(f"`{name}` lists a value more than once: {values!r}.")
            setattr(self, name, values)
        if min(self.num_shots) < 1:
            raise ValueError(f"`num_shots` must be integers >= 1, got {self.num_shots!r}.")
        for name in ("augment_epochs", "num_train_views", "num_train_epochs", "max_eval_samples", "batch_size"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"`{name}` must be an integer >= 1, got {value!r}.")
        unknown = sorted(set(self.method_config) - set(METHODS))
        if unknown:
            raise ValueError(f"`method_config` names unknown method(s) {unknown}; the methods are {list(METHODS)}.")
        if self.template_set is not None:
            get_preset(self.template_set)  # an unknown name fails here, before any work


@dataclass
class MethodRun:
    r"""
    One fitted model: `method` on the `num_shots`-shot sample of `seed`.

    Args:
        test_accuracy, validation_accuracy (`float`): fractions in [0, 1] (validation: after its choices).
        hyperparameters (`dict`): what was chosen on validation (`alpha`, `beta`, `gamma`, `C`, ..., the best epoch).
        fit_seconds (`float`): wall time of fit, search and training (the shared encoding excluded).
        model_dir (`str`, *optional*): where the model was saved.
        recipe (`dict`, *optional*): a trained head's resolved training recipe (batch size per process, views,
            learning rate, epochs, optimizer, schedule), as `hf-tip finetune` records it; `None` when training-free.
    """

    method: str
    seed: int
    num_shots: int
    test_accuracy: float
    validation_accuracy: float
    hyperparameters: dict[str, Any]
    fit_seconds: float
    model_dir: str | None = None
    recipe: dict[str, Any] | None = None


@dataclass
class ComparisonResult:
    r"""
    What [`compare_methods`] returns: every run and what they shared.

    Args:
        runs (`list[MethodRun]`): in the order run (seed, shots, method).
        methods, seeds, num_shots (`list`): what was asked.
        backbone (`str`): the backbone's name (or a label such as `"random-init"`).
        class_names (`list[str]`): the classes, in label order.
        num_validation, num_test (`int`): images in the shared splits.
        encode_seconds (`float`): wall time of the shared encoding (splits once, views once per seed).
        settings (`dict`): the [`CompareConfig`] as a dict.
    """

    runs: list[MethodRun]
    methods: list[str]
    seeds: list[int]
    num_shots: list[int]
    backbone: str
    class_names: list[str]
    num_validation: int
    num_test: int
    encode_seconds: float
    settings: dict[str, Any]

    def summary(self) -> dict[str, dict[int, dict[str, float]]]:
        """`{method: {shots: {"mean", "std", "n", "fit_seconds"}}}`: test accuracy in % over seeds (sample std, 0 for
        one seed) and the mean fit seconds."""
        out: dict[str, dict[int, dict[str, float]]] = {}
        for method in self.methods:
            for shots in self.num_shots:
                runs = [r for r in self.runs if r.method == method and r.num_shots == shots]
                if not runs:
                    continue
                values = [100 * r.test_accuracy for r in runs]
                out.setdefault(method, {})[shots] = {
                    "mean": statistics.fmean(values),
                    "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                    "n": len(values),
                    "fit_seconds": statistics.fmean(r.fit_seconds for r in runs),
                }
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ComparisonResult:
        """Rebuild a result from its `to_dict()` (a `results.json`), e.g. to draw the report again."""
        names = {f.name for f in dataclasses.fields(cls)} - {"runs"}
        runs = [MethodRun(**run) for run in data["runs"]]
        return cls(runs=runs, **{k: v for k, v in data.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        """Everything as JSON-ready values (what `results.json` holds), with the `summary`."""
        data = asdict(self)
        data["summary"] = {m: {str(k): v for k, v in cells.items()} for m, cells in self.summary().items()}
        return data


# ------------------------------------------------------------------------------------------------------- models
def base_model(backbone, dataset, config: CompareConfig, processor=None, device=None):
    """The zero-shot model every method starts from: backbone, processor and text weights of the dataset's classes
    (renamed by the preset, if any)."""
    from ..models.modeling_zero_shot import ZeroShotForImageClassification
    from .procedure import resolve_class_names

    preset = get_preset(config.template_set) if config.template_set else None
    labels, prompts = resolve_class_names(dataset, config.label_column, config.class_names, preset)
    templates = config.templates or (list(preset.templates) if preset is not None else None)
    model = ZeroShotForImageClassification.from_clip(backbone, labels, templates=templates, processor=processor)
    if prompts != labels:
        model.set_class_prompts([c.replace("_", " ") for c in prompts])
    return model.to(device if device is not None else model.device).eval()


def method_kwargs(method: str, config: CompareConfig, preset: DatasetPreset | None) -> dict[str, Any]:
    """Config arguments of one method: the preset's Tip-Adapter settings for the Tip-Adapter family, then the
    caller's `method_config`."""
    kwargs: dict[str, Any] = {}
    if preset is not None and method in TIP_FAMILY:
        kwargs = {k: v for k, v in preset.config_kwargs().items() if k not in ("templates", "augment_epochs")}
    return {**kwargs, **config.method_config.get(method, {})}


def new_model(method: str, base, **config_kwargs):
    """A model of `method` sharing `base`'s backbone, processor and text weights (no text re-encoding)."""
    cls = method_class(method)
    config = cls.config_class(
        backbone_config=base.config.backbone_config.to_dict(),
        templates=list(base.config.templates),
        id2label=dict(base.config.id2label),
        label2id=dict(base.config.label2id),
        backbone_name_or_path=base.config.backbone_name_or_path,
        **config_kwargs,
    )
    model = cls(config, clip=base.clip)
    with torch.no_grad():
        model.zero_shot_weights.copy_(base.zero_shot_weights)
    model.processor = base.processor
    return model.to(base.zero_shot_weights.device).eval()


def check_data(base, dataset, config: CompareConfig) -> list[int] | None:
    """The one dataset check where data enters (`data.check_dataset`: the three splits, the columns, the same classes
    in every split, matched to the model's by name or through the preset's / `class_names`' renames); returns the
    label map of the dataset's labels to the model's class indices (`None`: the same)."""
    from ..data.datasets import check_dataset, dataset_class_names, declared_mapping

    names = [base.config.id2label[i] for i in range(base.num_classes)]
    return check_dataset(
        dataset, names, image_column=config.image_column, label_column=config.label_column,
        class_mapping=declared_mapping(dataset_class_names(dataset["train"], config.label_column), names),
        required_splits=("train", "validation", "test"),
    )  # fmt: skip


# ----------------------------------------------------------------------------------------------------- encoding
def encode_eval_splits(base, dataset, config: CompareConfig) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Normalised features [N,D] and labels [N] of `validation` and `test`, once (a seeded subset with
    `max_eval_samples`)."""
    from .procedure import encode_split, subsample

    out = {}
    for split in ("validation", "test"):
        part = subsample(dataset[split], config.max_eval_samples)
        out[split] = encode_split(
            base,
            part,
            image_column=config.image_column,
            label_column=config.label_column,
            feature_cache_dir=config.feature_cache_dir,
            batch_size=config.batch_size,
            show_progress=config.show_progress,
            label_map=config.label_map,
        )
    return out


def encode_few_shot_views(
    base, train, seed: int, config: CompareConfig, num_views: int
) -> tuple[list[int], torch.Tensor, torch.Tensor]:
    """The largest few-shot sample of `seed`: its dataset indices [N], raw view features `[num_views, N, D]`
    (float32, CPU; view `v` of dataset image `i` from `view_generator(seed, v, i)`) and labels [N]."""
    from .procedure import encode_views, sample

    picked, labels = sample(
        base, train, max(config.num_shots), seed=seed, label_column=config.label_column,
        allow_fewer_shots=config.allow_fewer_shots, label_map=config.label_map,
    )  # fmt: skip
    images = list(train.select(picked)[config.image_column])
    views = encode_views(
        base,
        images,
        num_views,
        seed=seed,
        batch_size=config.batch_size,
        show_progress=config.show_progress,
        indices=picked,
    )
    return picked, views, labels


def shot_positions(train_labels: Sequence[int], picked: list[int], shots: int, seed: int, config, names) -> list[int]:
    """Positions in the largest sample `picked` of the `shots`-shot sample of the same seed (nested sampling)."""
    position = {index: p for p, index in enumerate(picked)}
    subset = sample_few_shot(train_labels, shots, seed, names, config.allow_fewer_shots)
    return [position[i] for i in subset]


# ------------------------------------------------------------------------------------------------------ fitting
def _accuracy(model, embeds: torch.Tensor, labels: torch.Tensor) -> float:
    from .evaluation import compute_accuracy

    with torch.no_grad():
        logits = model(image_embeds=embeds.to(model.zero_shot_weights.device)).logits
    return compute_accuracy(logits.float().cpu(), labels.cpu())


def _chosen(searched: Mapping[str, Any] | None) -> dict[str, Any]:
    """The chosen values of a search result, as plain numbers (its validation `accuracy` dropped)."""
    out = {}
    for key, value in (searched or {}).items():
        if key == "accuracy":
            continue
        if isinstance(value, torch.Tensor):
            value = value.tolist()
        out[key] = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value
    return out


def fit_method(method, base, views, labels, val, seed, shots, config, preset, accelerator=None):
    """One run's model: fit on the first `augment_epochs` views, search on validation, and for a trained head train
    on the later views (`train_head`). Returns `(model, hyperparameters, recipe)` (`recipe`: the resolved training
    recipe's record, `None` for a training-free head)."""
    model = new_model(method, base, **method_kwargs(method, config, preset))
    start_ab = (model.config.alpha, model.config.beta) if hasattr(model, "cache_keys") else None
    device = model.zero_shot_weights.device
    fit_views = views[: config.augment_epochs].to(device)
    model.fit(fit_views, labels.to(device), num_shots=shots, seed=seed)
    chosen = _chosen(model.search_hyperparameters(*[t.to(device) for t in val]))
    if not METHODS[method][1]:
        return model, chosen, None
    recipe = training_recipe(model, seed, config, preset)
    bank = views[config.augment_epochs : config.augment_epochs + recipe.num_augmented_views].to(device)
    chosen = train_head(model, bank, labels.to(device), val, recipe, config, accelerator, start_ab)
    return model, chosen, recipe.recipe()


def training_recipe(model, seed: int, config: CompareConfig, preset: DatasetPreset | None):
    """The [`FinetuneConfig`] a trained head trains with, resolved as `hf-tip finetune` resolves it
    ([`FinetuneConfig.resolve`]: the model config's values, else the method's registered recipe): the same batch,
    views, optimizer and schedule in both commands. `--num_train_epochs` / `--num_train_views` override it; without
    them a preset's Tip-Adapter-F epochs apply, and Tip-Adapter-F trains on as many views as its cache has."""
    from ..training.args import FinetuneConfig

    epochs = config.num_train_epochs
    if epochs is None and preset is not None and hasattr(model, "cache_keys"):
        epochs = preset.train_epochs  # Tip-Adapter-F's epochs on this dataset (EuroSAT: 100)
    recipe = FinetuneConfig(seed=seed, num_train_epochs=epochs, num_augmented_views=config.num_train_views)
    recipe = recipe.resolve(model)
    if recipe.num_augmented_views is None:
        recipe = dataclasses.replace(recipe, num_augmented_views=config.augment_epochs)
    return recipe


def train_views(method: str, config: CompareConfig, preset: DatasetPreset | None) -> int:
    """The views after the cache's that a trained method's bank needs (its resolved recipe's)."""
    from types import SimpleNamespace

    from ..methods import get_method

    stand_in = SimpleNamespace(config=get_method(method).config_class(**method_kwargs(method, config, preset)))
    return training_recipe(stand_in, 1, config, preset).num_augmented_views


def train_head(model, bank, labels, val, recipe, config, accelerator, start_ab) -> dict[str, Any]:
    """Train the head's enabled parameters on the feature bank `[V,N,D]` with the training module's loop and the
    resolved `recipe` ([`training_recipe`]), keep the first best validation epoch, then search the hyper-parameters
    again on validation. Tip-Adapter-F trains at the initial α/β, as the paper does."""
    from ..training.trainer import create_optimizer_and_scheduler, train_epoch

    model.enable_training()
    if start_ab is not None:
        model.config.alpha, model.config.beta = start_ab
    batch = recipe.per_device_train_batch_size
    steps = math.ceil(len(labels) / batch)
    optimizer, scheduler = create_optimizer_and_scheduler(model, recipe, steps * recipe.num_train_epochs, steps)
    trained = {n: p for n, p in model.named_parameters() if p.requires_grad}
    best = (-1.0, -1, {n: p.detach().clone() for n, p in trained.items()})
    for epoch in range(recipe.num_train_epochs):
        train_epoch(accelerator, model, optimizer, scheduler, labels, epoch, train_batch_size=batch,
                    seed=recipe.seed, feature_bank=bank, first_view=config.augment_epochs)  # fmt: skip
        value = _accuracy(model, *val)
        if value > best[0]:  # the first best epoch wins
            best = (value, epoch, {n: p.detach().clone() for n, p in trained.items()})
    with torch.no_grad():
        for name, param in trained.items():
            param.copy_(best[2][name])
    model.requires_grad_(False)
    device = model.zero_shot_weights.device
    chosen = _chosen(model.search_hyperparameters(*[t.to(device) for t in val]))
    return {**chosen, "num_train_epochs": recipe.num_train_epochs, "best_epoch": best[1]}


# -------------------------------------------------------------------------------------------------------- the run
def compare_methods(backbone, dataset, config: CompareConfig | None = None, *, processor=None, device=None,
                    backbone_label: str | None = None, **kwargs) -> ComparisonResult:  # fmt: skip
    r"""
    Run every method on the same few-shot samples and the same validation / test splits.

    Args:
        backbone (`str`, `os.PathLike` or [`PreTrainedModel`]): a CLIP-family checkpoint (Hub id or folder) or a
            loaded model (then pass `processor`).
        dataset (`datasets.DatasetDict`): `train`, `validation` and `test` splits with an image and a `ClassLabel`
            label column.
        config ([`CompareConfig`], *optional*): what to run; `kwargs` set its fields instead.
        processor ([`ProcessorMixin`], *optional*): the backbone's processor, with a loaded model.
        device (`str` or `torch.device`, *optional*): where the backbone and heads run (default: the backbone's).
        backbone_label (`str`, *optional*): how results name the backbone (e.g. `"random-init"`).

    Returns:
        [`ComparisonResult`]: every run (method, seed, shots, test / validation accuracy, chosen hyper-parameters,
        fit seconds); `.summary()` gives mean ± std over seeds.

    Example:

    ```python
    >>> from hf_tip import compare_methods
    >>> result = compare_methods("openai/clip-vit-base-patch16", dataset, seeds=[1, 2], num_shots=[1, 4])
    >>> result.summary()["tip-adapter"][4]["mean"]
    ```
    """
    if config is not None and kwargs:
        raise ValueError(f"Pass either `config` or its fields as keyword arguments, not both (got {sorted(kwargs)}).")
    config = config if config is not None else CompareConfig(**kwargs)
    started = time.perf_counter()
    base = base_model(backbone, dataset, config, processor, device)
    config.label_map = check_data(base, dataset, config)
    splits = encode_eval_splits(base, dataset, config)
    encode_seconds = time.perf_counter() - started
    runs: list[MethodRun] = []
    accelerator = _accelerator(base) if any(METHODS[m][1] for m in config.methods) else None
    total = len(config.seeds) * len(config.num_shots) * len(config.methods)
    bar = tqdm(total=total, desc="Fitting", unit="run", disable=not config.show_progress)
    for seed in config.seeds:
        started = time.perf_counter()
        runs_of_seed, seconds = _run_seed(base, dataset["train"], seed, splits, config, accelerator, bar)
        runs += runs_of_seed
        encode_seconds += time.perf_counter() - started - seconds
    bar.close()
    name = backbone_label or base.config.backbone_name_or_path or type(base.clip).__name__
    return ComparisonResult(
        runs=runs, methods=list(config.methods), seeds=list(config.seeds), num_shots=list(config.num_shots),
        backbone=str(name), class_names=[base.config.id2label[i] for i in range(base.num_classes)],
        num_validation=len(splits["validation"][1]), num_test=len(splits["test"][1]),
        encode_seconds=encode_seconds, settings=asdict(config),
    )  # fmt: skip


def _accelerator(base):
    from accelerate import Accelerator

    return Accelerator(cpu=base.zero_shot_weights.device.type == "cpu")


def _run_seed(base, train, seed, splits, config, accelerator, bar) -> tuple[list[MethodRun], float]:
    """Every (shots, method) run of one seed on its views, encoded once; returns the runs and their fit seconds."""
    preset = get_preset(config.template_set) if config.template_set else None
    trained = [train_views(m, config, preset) for m in config.methods if METHODS[m][1]]
    num_views = config.augment_epochs + max(trained, default=0)
    picked, views, labels = encode_few_shot_views(base, train, seed, config, num_views)
    names = [base.config.id2label[i] for i in range(base.num_classes)]
    train_labels = remap_labels(train[config.label_column], config.label_map).tolist()
    runs, seconds = [], 0.0
    for shots in config.num_shots:
        positions = shot_positions(train_labels, picked, shots, seed, config, names)
        for method in config.methods:
            bar.set_postfix(method=method, shots=shots, seed=seed)
            started = time.perf_counter()
            model, chosen, recipe = fit_method(
                method, base, views[:, positions], labels[positions], splits["validation"], seed, shots, config,
                preset, accelerator,
            )  # fmt: skip
            elapsed = time.perf_counter() - started
            seconds += elapsed
            run = MethodRun(
                method=method, seed=seed, num_shots=shots, test_accuracy=_accuracy(model, *splits["test"]),
                validation_accuracy=_accuracy(model, *splits["validation"]), hyperparameters=chosen,
                fit_seconds=elapsed, recipe=recipe,
            )  # fmt: skip
            if config.save_models_dir is not None:
                run.model_dir = os.path.join(config.save_models_dir, method, f"shots{shots}-seed{seed}")
                model.save_pretrained(run.model_dir)
            runs.append(run)
            bar.update(1)
    return runs, seconds


__all__ = [
    "METHODS",
    "METHOD_LABELS",
    "CompareConfig",
    "ComparisonResult",
    "MethodRun",
    "check_methods",
    "compare_methods",
    "method_class",
]
