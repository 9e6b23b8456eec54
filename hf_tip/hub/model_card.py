"""Model cards for hf-tip repositories, rendered from the template shipped in the package
(`hf_tip/hub/model_card_template.md`): Hub metadata with a model-index of the measured accuracies, then prose.

What was measured is a [`TipAdapterModelCardData`] (a `huggingface_hub.CardData` dataclass, as SetFit's
`SetFitModelCardData`). `model.card_data` may be that dataclass or, as the modeling file sets it (it travels as remote
code and cannot import this module), a plain dict that callers `.update(...)`: the renderer converts a dict with
[`TipAdapterModelCardData.from_dict`], which refuses unknown keys, and the dataclass has an `update(**kwargs)` too.

```python
{
    "dataset_name": "blanchon/EuroSAT_RGB",  # a Hub dataset id, or None for local image folders
    "eval_split": "test",                    # "test" or "validation": the split the accuracies come from
    "num_shots": 16,
    "results": {"zero_shot_accuracy": 0.41, "tip_adapter_accuracy": 0.78, "tip_adapter_f_accuracy": 0.86},
    "command": "hf-tip build --dataset_name blanchon/EuroSAT_RGB ...",
    "license": "mit",                        # optional, defaults to "apache-2.0"
    "history": [{"epoch": 0, "train_loss": 1.2, "validation_accuracy": 0.8}],  # a fine-tuning run's epochs
    "training": {"num_train_epochs": 20, "learning_rate": 0.001},             # its training hyper-parameters
}
```

The card stores these fields in its YAML metadata under `hf_tip:`, so `hf-tip push` re-renders a saved folder's card
for the Hub repo id; cards of the first release (the fields in an HTML comment) are still read. A generated card is
marked by a short HTML comment; a README.md without it is the user's and is never overwritten.

Everything recorded is redacted ([`hf_tip.hub.redact`]: `--hub_token` values, token-shaped strings) and stripped of local
paths (a local backbone or data folder shows as its folder name) when the card is rendered, whoever filled it.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
import re
import shlex
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import CardData, EvalResult, ModelCard, ModelCardData
from huggingface_hub.utils import HFValidationError, validate_repo_id

from .redact import REDACTED, SECRET_FLAGS, redact_argv, redact_text

TEMPLATE_PATH = Path(__file__).with_name("model_card_template.md")
MARKER = "<!-- hf_tip:generated"
METADATA_KEY = "hf_tip"
# Method names of the result keys `<method>_accuracy` (the methods' flag names with `_` for `-`).
METHOD_NAMES = {
    "zero_shot": "Zero-shot",
    "linear_probe": "Linear probe",
    "clip_adapter": "CLIP-Adapter",
    "tip_adapter": "Tip-Adapter",
    "tip_adapter_f": "Tip-Adapter-F",
    "tip_x": "TIP-X",
    "gda": "GDA",
}
RESULT_KEYS = tuple(f"{method}_accuracy" for method in METHOD_NAMES)
# `config.model_type` -> (name shown, paper link).
MODEL_TYPES = {
    "tip-adapter": ("Tip-Adapter", "https://arxiv.org/abs/2207.09519"),
    "clip-zero-shot": ("Zero-shot CLIP", "https://arxiv.org/abs/2103.00020"),
    "tip-x": ("TIP-X", "https://arxiv.org/abs/2211.16198"),
    "clip-adapter": ("CLIP-Adapter", "https://arxiv.org/abs/2110.04544"),
    "linear-probe": ("Linear probe", "https://arxiv.org/abs/2103.00020"),
    "gda": ("GDA", "https://arxiv.org/abs/2402.04087"),
}
BACKBONE_FAMILIES = {"clip": "CLIP", "siglip": "SigLIP", "siglip2": "SigLIP 2", "chinese_clip": "Chinese-CLIP"}
BACKBONE_FAMILIES["altclip"] = "AltCLIP"
EVAL_SPLITS = ("test", "validation")
TAGS = ["clip", "few-shot", "hf-tip"]
DEFAULT_LICENSE = "apache-2.0"
FRAMEWORKS = {"hf-tip": "hf_tip", "transformers": None, "torch": None, "datasets": None, "accelerate": None}
# Config fields shown elsewhere in the card (or not at all) rather than in the hyper-parameter table.
NOT_HYPERPARAMETERS = {
    "templates",
    "auto_map",
    "id2label",
    "label2id",
    "cache_size",
    "save_backbone",
    "backbone_revision",
}
_LEGACY_DATA_RE = re.compile(r"<!-- hf_tip:generated.*?card_data=(\{.*?\}) -->", re.S)
_REPO_ID_RE = re.compile(r"[\w.-]+(/[\w.-]+)?")
_SECRET_FLAG_RE = re.compile(r"(?P<flag>" + "|".join(map(re.escape, SECRET_FLAGS)) + r")(?P<sep>=|\s+)(?P<value>\S+)")
_DIR_FLAG_RE = re.compile(r"--\w*(_dir|_path|_file)$")


# ----------------------------------------------------------------------------------------------- secrets and paths
def redact_free_text(text: str) -> str:
    """`text` with the value after every secret flag (`--hub_token X`, `--token=X`) and every token-shaped string
    replaced by `<redacted>`: for text that may quote a command line but is not one."""
    return redact_text(_SECRET_FLAG_RE.sub(lambda m: f"{m['flag']}{m['sep']}{REDACTED}", text))


def is_local_path(value: str) -> bool:
    """Whether `value` names a local file or folder (absolute, home-relative, `./`/`../`, or existing on disk)."""
    return bool(value) and (
        os.path.isabs(value) or value.startswith(("~", "./", "../", ".\\")) or os.path.exists(value)
    )


def public_name(value: str | None) -> str | None:
    """`value` as a card may show it: a Hub id as is, a local path as its last component only."""
    if not value or not is_local_path(value):
        return value
    return Path(os.path.normpath(os.path.expanduser(value))).name or value


def clean_command(command: str | None) -> str | None:
    """The recorded command line, redacted (secret flags, token-shaped strings) and with local paths (values of
    `--*_dir`, `--*_path`, `--*_file` flags and any argument naming a local path) reduced to their last component."""
    if command is None:
        return None
    try:
        argv = shlex.split(command)
    except ValueError:  # unbalanced quotes: redact the text as it is
        return redact_free_text(command)
    cleaned = redact_argv(argv)
    for i, arg in enumerate(cleaned):
        flag, eq, value = arg.partition("=")
        if eq and flag.startswith("--"):
            if _DIR_FLAG_RE.match(flag) or is_local_path(value):
                cleaned[i] = f"{flag}={public_name(value) if is_local_path(value) else Path(value).name}"
        elif i > 0 and _DIR_FLAG_RE.match(cleaned[i - 1]) and not arg.startswith("--"):
            cleaned[i] = Path(os.path.normpath(arg)).name or arg
        elif i > 0 and is_local_path(arg):
            cleaned[i] = public_name(arg)
    return command if cleaned == argv else shlex.join(cleaned)


def _redact_value(value: Any) -> Any:
    """`value` with every string in it (nested in dicts and lists too) passed through [`redact_free_text`]."""
    if isinstance(value, str):
        return redact_free_text(value)
    if isinstance(value, Mapping):
        return {key: _redact_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redact_value(item) for item in value]
    return value


# ------------------------------------------------------------------------------------------------------ card data
@dataclass
class TipAdapterModelCardData(CardData):
    r"""
    What a model card reports beyond the config: the data, the measured accuracies and how the model was built.

    Args:
        dataset_name (`str`, *optional*): the dataset's name as shown (a Hub id, or `None` for local image folders).
        dataset_id (`str`, *optional*): the Hub dataset id for the metadata; defaults to `dataset_name` when that is
            a Hub id.
        eval_split (`str`, *optional*): `"test"` or `"validation"`, the split the accuracies come from (required
            with `results`).
        num_shots (`int`, *optional*): examples per class; defaults to the config's.
        results (`dict[str, float]`, *optional*): accuracies in [0, 1] keyed `<method>_accuracy`
            (`zero_shot_accuracy`, `tip_adapter_accuracy`, `tip_adapter_f_accuracy`, `tip_x_accuracy`, ...).
        command (`str`, *optional*): the command line that built the model (redacted when rendered).
        license (`str`, *optional*, defaults to `"apache-2.0"` in the card): the model's licence.
        base_model (`str`, *optional*): the backbone's Hub id; defaults to the config's when that is a Hub id.
        history (`list[dict]`, *optional*): a fine-tuning run's per-epoch records (`epoch`, `train_loss`,
            `validation_accuracy`, ...), shown as a table.
        training (`dict`, *optional*): a fine-tuning run's hyper-parameters (epochs, learning rate, eps, batch size,
            schedule, ...), shown as a table.
        framework_versions (`dict[str, str]`, *optional*): filled with the installed versions when first rendered.

    Example:

    ```python
    >>> from hf_tip.hub.model_card import TipAdapterModelCardData
    >>> data = TipAdapterModelCardData(eval_split="test", results={"tip_adapter_accuracy": 0.8})
    >>> data.update(num_shots=16)
    >>> data.num_shots
    16
    ```
    """

    dataset_name: str | None = None
    dataset_id: str | None = None
    eval_split: str | None = None
    num_shots: int | None = None
    results: dict[str, float] = field(default_factory=dict)
    command: str | None = None
    license: str | None = None
    base_model: str | None = None
    history: list[dict[str, Any]] | None = None
    training: dict[str, Any] | None = None
    framework_versions: dict[str, str] | None = None

    def __post_init__(self):
        self._validate()

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | TipAdapterModelCardData | None) -> TipAdapterModelCardData:
        """A checked card data from a dict (what `model.card_data` holds); raises a `ValueError` naming an unknown
        key or a bad value."""
        if isinstance(data, TipAdapterModelCardData):
            return cls(**{name: getattr(data, name) for name in cls.field_names()})
        if data is not None and not isinstance(data, Mapping):
            raise ValueError(f"`card_data` must be a dict or a TipAdapterModelCardData, got {type(data).__name__}.")
        data = dict(data or {})
        unknown = sorted(set(data) - set(cls.field_names()))
        if unknown:
            raise ValueError(f"Unknown `card_data` key(s) {unknown}; the model card reads {cls.field_names()}.")
        return cls(**{key: value for key, value in data.items() if key != "results" or value is not None})

    def update(self, other: Mapping[str, Any] | None = None, /, **kwargs) -> None:
        """Set fields as `dict.update` does (unknown keys are refused), then check them all again."""
        values = {**dict(other or {}), **kwargs}
        unknown = sorted(set(values) - set(self.field_names()))
        if unknown:
            raise ValueError(f"Unknown `card_data` key(s) {unknown}; the model card reads {self.field_names()}.")
        for key, value in values.items():
            setattr(self, key, value if key != "results" or value is not None else {})
        self._validate()

    def to_dict(self) -> dict[str, Any]:
        """The fields that are set, redacted, as stored under `hf_tip:` in the card's YAML."""
        data = {name: getattr(self, name) for name in self.field_names()}
        data["command"] = clean_command(data["command"])
        return _redact_value({key: value for key, value in data.items() if value not in (None, {}, [])})

    def to_yaml(self, line_break=None, original_order: list[str] | None = None) -> str:
        return yaml.dump(self.to_dict(), sort_keys=False, line_break=line_break, allow_unicode=True).strip()

    def _validate(self) -> None:
        """Raise a `ValueError` naming the first bad field."""
        for key in ("dataset_name", "dataset_id", "command", "license", "base_model", "eval_split"):
            if getattr(self, key) is not None and not isinstance(getattr(self, key), str):
                raise ValueError(f"`card_data[{key!r}]` must be a string or None, got {getattr(self, key)!r}.")
        shots = self.num_shots
        if shots is not None and (not isinstance(shots, int) or isinstance(shots, bool) or shots < 1):
            raise ValueError(f"`card_data['num_shots']` must be an integer >= 1, got {shots!r}.")
        self.results = _checked_results(self.results)
        if self.results and self.eval_split not in EVAL_SPLITS:
            raise ValueError(
                f"`card_data['eval_split']` must be one of {list(EVAL_SPLITS)} when results are given (say which "
                f"split the accuracies come from), got {self.eval_split!r}."
            )
        if self.history is not None and (
            not isinstance(self.history, list) or not all(isinstance(row, Mapping) for row in self.history)
        ):
            raise ValueError(f"`card_data['history']` must be a list of dicts (one per epoch), got {self.history!r}.")
        for key in ("training", "framework_versions"):
            if getattr(self, key) is not None and not isinstance(getattr(self, key), Mapping):
                raise ValueError(f"`card_data[{key!r}]` must be a dict, got {getattr(self, key)!r}.")


def _checked_results(results: Any) -> dict[str, float]:
    """`results` as `{key: float}` in the order of `RESULT_KEYS`; raises a `ValueError` naming a bad key or value."""
    results = results or {}
    if not isinstance(results, Mapping):
        raise ValueError(f"`card_data['results']` must be a dict of accuracies, got {type(results).__name__}.")
    for key, value in results.items():
        if key not in RESULT_KEYS:
            raise ValueError(
                f"Unknown result {key!r} in `card_data['results']`; expected some of {list(RESULT_KEYS)}."
            )
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise ValueError(f"`card_data['results'][{key!r}]` must be a fraction in [0, 1], got {value!r}.")
    return {key: float(results[key]) for key in RESULT_KEYS if key in results}


def validate_card_data(card_data: Mapping[str, Any] | TipAdapterModelCardData | None) -> dict[str, Any]:
    """A checked copy of `card_data` as a dict of the fields that are set; raises a `ValueError` naming the first bad
    key or value."""
    data = TipAdapterModelCardData.from_dict(card_data)
    return {name: getattr(data, name) for name in data.field_names() if getattr(data, name) not in (None, {}, [])}


def is_generated(readme_text: str) -> bool:
    """Whether a README.md text is a card that hf_tip generated (and may overwrite)."""
    return MARKER in readme_text


def read_card_data(readme_text: str) -> dict[str, Any] | None:
    """The card data stored in a generated card (its YAML `hf_tip:` metadata, or the HTML comment of a card of the
    first release), or `None` when the text is not a generated card."""
    if not is_generated(readme_text):
        return None
    match = re.match(r"^---\s*\n(.*?)\n---\s*\n", readme_text, re.S)
    if match:
        metadata = yaml.safe_load(match.group(1)) or {}
        if isinstance(metadata, dict) and isinstance(metadata.get(METADATA_KEY), dict):
            return dict(metadata[METADATA_KEY])
    legacy = _LEGACY_DATA_RE.search(readme_text)
    return json.loads(legacy.group(1)) if legacy else {}


# --------------------------------------------------------------------------------------------------- rendering
def _hub_model_id(name: str | None) -> str | None:
    """`name` when it reads as a Hub repo id (not a local folder), else `None`."""
    if not name or is_local_path(name) or not _REPO_ID_RE.fullmatch(name) or name.startswith("."):
        return None
    try:
        validate_repo_id(name)
    except HFValidationError:
        return None
    return name


def format_value(value: Any) -> str:
    """A value as a card shows it: floats to 4 significant digits, lists joined, local paths as their last part."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(item) for item in value)
    if isinstance(value, str):
        return redact_free_text(public_name(value) or "")
    return str(value)


def framework_versions() -> dict[str, str]:
    """The installed versions of hf-tip and the libraries it builds on (those that are installed)."""
    versions = {}
    for name, module in FRAMEWORKS.items():
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            if module is not None:  # hf_tip run from a source tree
                from .. import __version__

                versions[name] = __version__
    return versions


def _backbone_source(config) -> str | None:
    """Where the backbone came from (`backbone_name_or_path` or the first release's `clip_name_or_path`)."""
    return getattr(config, "backbone_name_or_path", None) or getattr(config, "clip_name_or_path", None)


def _backbone_family(config) -> str:
    """The backbone's family as shown (`CLIP`, `SigLIP`, ...), from its nested config's `model_type`."""
    for name in ("backbone_config", "clip_config"):
        sub = getattr(config, name, None)
        model_type = sub.get("model_type") if isinstance(sub, dict) else getattr(sub, "model_type", None)
        if model_type:
            return BACKBONE_FAMILIES.get(model_type, model_type)
    return "CLIP"


def method_name(config) -> str:
    """The method's name, from `config.model_type` (`Tip-Adapter-F` for a Tip-Adapter with fine-tuned keys)."""
    if config.model_type == "tip-adapter" and getattr(config, "finetune_keys", False):
        return "Tip-Adapter-F"
    return MODEL_TYPES.get(config.model_type, (config.model_type, None))[0]


def hyperparameters(config) -> list[tuple[str, str]]:
    """The method's own config fields (what is not a `PreTrainedConfig` default field, a nested config or a local
    path's folder), as `(name, shown value)` rows."""
    from transformers import PreTrainedConfig

    common = set(PreTrainedConfig().to_dict()) | set(getattr(config, "sub_configs", {}) or {}) | NOT_HYPERPARAMETERS
    rows = []
    for key, value in sorted(config.to_dict().items()):
        if key in common or key.endswith("name_or_path") or isinstance(value, dict) or value is None:
            continue
        rows.append((key, format_value(value)))
    return rows


def _table(rows: list[Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """`(columns, cells)` of records: accuracies in % with 2 decimals, other floats with 4 significant digits."""
    columns = list(dict.fromkeys(key for row in rows for key in row))

    def cell(key: str, value: Any) -> str:
        if "accuracy" in key and isinstance(value, float):
            return f"{100 * value:.2f} %"
        return format_value(value) if value is not None else ""

    return columns, [[cell(key, row.get(key)) for key in columns] for row in rows]


def _metadata(config, data: TipAdapterModelCardData, model_name: str, tags: list[str] | None) -> ModelCardData:
    """The card's YAML: Hub fields, a model-index of the results (fractions, 4 decimals) and the card data."""
    family = _backbone_family(config)
    dataset_id = data.dataset_id or _hub_model_id(data.dataset_name)
    num_shots = data.num_shots or getattr(config, "num_shots", None)
    eval_results = [
        EvalResult(
            task_type="image-classification",
            task_name="Few-shot image classification",
            dataset_type=dataset_id or "imagefolder",
            dataset_name=dataset_id or "local image folders",
            dataset_split=data.eval_split,
            metric_type="accuracy",
            metric_name=f"{_result_name(key, family)} accuracy"
            + ("" if key == "zero_shot_accuracy" else f" ({num_shots}-shot)"),
            metric_value=round(value, 4),
        )
        for key, value in data.results.items()
    ]
    own_tag = config.model_type if config.model_type != "clip-zero-shot" else "zero-shot"
    base_tags = [own_tag] + TAGS + (["tip-adapter-f"] if method_name(config) == "Tip-Adapter-F" else [])
    return ModelCardData(
        library_name="transformers",  # transformers loads it (pipeline, Auto classes); hf-tip is a tag
        pipeline_tag="image-classification",
        tags=base_tags + [tag for tag in tags or [] if tag not in base_tags],
        base_model=data.base_model or _hub_model_id(_backbone_source(config)),
        datasets=[dataset_id] if dataset_id else None,
        license=data.license or DEFAULT_LICENSE,
        metrics=["accuracy"] if eval_results else None,
        model_name=model_name if eval_results else None,
        eval_results=eval_results or None,
        **{METADATA_KEY: data.to_dict()},
    )


def _result_name(key: str, family: str) -> str:
    name = METHOD_NAMES[key.removesuffix("_accuracy")]
    return f"{name} {family}" if key == "zero_shot_accuracy" else name


def render_model_card(
    config,
    card_data: Mapping[str, Any] | TipAdapterModelCardData | None = None,
    model_id: str | None = None,
    tags: list[str] | None = None,
) -> ModelCard:
    r"""
    Render the model card of an hf-tip model (any `config.model_type` hf_tip registers).

    Args:
        config ([`PreTrainedConfig`]): the model's configuration (classes, templates, hyper-parameters, backbone).
        card_data (`dict` or [`TipAdapterModelCardData`], *optional*): what was measured; checked here.
        model_id (`str`, *optional*): the Hub repo id the card's usage examples load from (a local folder shows as
            its name).
        tags (`list[str]`, *optional*): tags added to hf_tip's own (the model type, `clip`, `few-shot`, `hf-tip`).

    Returns:
        [`huggingface_hub.ModelCard`] whose metadata holds `library_name`, `pipeline_tag`, `tags`, `base_model`,
        `datasets`, `license`, the card data under `hf_tip` and, given results, a `model-index`.
    """
    data = TipAdapterModelCardData.from_dict(card_data)
    if data.framework_versions is None:
        data.framework_versions = framework_versions()
    model_id = public_name(model_id) if model_id else "path/to/model"
    model_name = model_id.rstrip("/").split("/")[-1] or "model"
    labels = [config.id2label[i] for i in sorted(config.id2label)]
    history = _table(data.history or [])
    family = _backbone_family(config)
    return ModelCard.from_template(
        _metadata(config, data, model_name, tags),
        template_path=str(TEMPLATE_PATH),
        marker=f"{MARKER}: written by hf_tip, which rewrites this card on save and push; delete this comment to keep "
        "your edits. -->",
        model_name=model_name,
        repo_id=model_id,
        method=method_name(config),
        model_type=config.model_type,
        paper=MODEL_TYPES.get(config.model_type, (None, None))[1],
        family=family,
        base_model=data.base_model or _hub_model_id(_backbone_source(config)),
        backbone=public_name(_backbone_source(config)),
        save_backbone=getattr(config, "save_backbone", True) is not False,
        dataset_name=_hub_model_id(data.dataset_id or data.dataset_name),
        num_classes=len(labels),
        class_names=list(enumerate(format_value(label) for label in labels)),
        num_shots=data.num_shots or getattr(config, "num_shots", None),
        cache_size=getattr(config, "cache_size", None),
        hyperparameters=hyperparameters(config),
        finetuned=method_name(config) == "Tip-Adapter-F",
        templates=[redact_free_text(t) for t in getattr(config, "templates", None) or []],
        results=[(_result_name(key, family), value) for key, value in data.results.items()],
        eval_split=data.eval_split,
        command=clean_command(data.command),
        history_columns=history[0],
        history_rows=history[1],
        training=[(key, format_value(value)) for key, value in (data.training or {}).items()],
        framework_versions=sorted(data.framework_versions.items()),
    )


def write_model_card(
    model, save_directory: str | os.PathLike, model_id: str | None = None, tags: list[str] | None = None
) -> Path | None:
    r"""
    Write `README.md` into a saved folder from `model.config` and `model.card_data`.

    A README.md that hf_tip did not generate is kept: a `UserWarning` says so and nothing is written.

    Args:
        model ([`PreTrainedModel`]): the saved model (any hf_tip method).
        save_directory (`str` or `os.PathLike`): the folder `save_pretrained` wrote.
        model_id (`str`, *optional*): the Hub repo id for the usage examples; defaults to the folder's name.
        tags (`list[str]`, *optional*): extra tags for the metadata.

    Returns:
        The path of the written card, or `None` when a user's README.md was kept.
    """
    path = Path(save_directory) / "README.md"
    if path.exists() and not is_generated(path.read_text(encoding="utf-8", errors="replace")):
        warnings.warn(
            f"{path} was not generated by hf_tip; it is kept as is and no model card was written. Move it away (or "
            "add the card's metadata yourself) to get the generated card with the model's results.",
            UserWarning,
            stacklevel=2,
        )
        return None
    card = render_model_card(model.config, getattr(model, "card_data", None), model_id or str(save_directory), tags)
    card.save(path)
    return path


__all__ = [
    "TipAdapterModelCardData",
    "clean_command",
    "is_generated",
    "read_card_data",
    "redact_free_text",
    "render_model_card",
    "validate_card_data",
    "write_model_card",
]
