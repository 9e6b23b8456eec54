"""Model cards for Tip-Adapter repositories, rendered from the template shipped in the package
(`hf_tip/model_card_template.md`): Hub metadata with a model-index of the measured accuracies, then prose.

`model.card_data` (filled by `hf-tip build` and the fine-tuning example) holds what was measured:

```python
{
    "dataset_name": "blanchon/EuroSAT_RGB",  # a Hub dataset id, or None for local image folders
    "eval_split": "test",                    # "test" or "validation": the split the accuracies come from
    "num_shots": 16,
    "results": {"zero_shot_accuracy": 0.41, "tip_adapter_accuracy": 0.78, "tip_adapter_f_accuracy": 0.86},
    "command": "hf-tip build --dataset_name blanchon/EuroSAT_RGB ...",
    "license": "mit",                        # optional, defaults to "apache-2.0"
}
```

Every key is optional, and so is each accuracy (fractions in [0, 1]). A generated card is marked by an HTML comment
that also stores this dict, so `hf-tip push` can re-render a saved folder's card with the Hub repo id; a README.md
without the mark is the user's and is never overwritten.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData
from huggingface_hub.utils import HFValidationError, validate_repo_id

TEMPLATE_PATH = Path(__file__).with_name("model_card_template.md")
MARKER = "<!-- hf_tip:generated"
RESULT_NAMES = {
    "zero_shot_accuracy": "Zero-shot CLIP",
    "tip_adapter_accuracy": "Tip-Adapter",
    "tip_adapter_f_accuracy": "Tip-Adapter-F",
}
CARD_DATA_KEYS = ("dataset_name", "eval_split", "num_shots", "results", "command", "license")
EVAL_SPLITS = ("test", "validation")
TAGS = ["tip-adapter", "clip", "few-shot", "hf-tip"]
DEFAULT_LICENSE = "apache-2.0"
_CARD_DATA_RE = re.compile(r"<!-- hf_tip:generated.*?card_data=(\{.*?\}) -->", re.S)
_REPO_ID_RE = re.compile(r"[\w.-]+(/[\w.-]+)?")


def validate_card_data(card_data: Mapping[str, Any] | None) -> dict[str, Any]:
    """A checked copy of `card_data`; raises a `ValueError` naming the first bad key or value."""
    data = dict(card_data or {})
    unknown = sorted(set(data) - set(CARD_DATA_KEYS))
    if unknown:
        raise ValueError(f"Unknown `card_data` key(s) {unknown}; the model card reads {list(CARD_DATA_KEYS)}.")
    for key in ("dataset_name", "command", "license"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise ValueError(f"`card_data[{key!r}]` must be a string or None, got {data[key]!r}.")
    shots = data.get("num_shots")
    if shots is not None and (not isinstance(shots, int) or isinstance(shots, bool) or shots < 1):
        raise ValueError(f"`card_data['num_shots']` must be an integer >= 1, got {shots!r}.")
    results = data.get("results") or {}
    if not isinstance(results, Mapping):
        raise ValueError(f"`card_data['results']` must be a dict of accuracies, got {type(results).__name__}.")
    for key, value in results.items():
        if key not in RESULT_NAMES:
            raise ValueError(
                f"Unknown result {key!r} in `card_data['results']`; expected some of {list(RESULT_NAMES)}."
            )
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise ValueError(f"`card_data['results'][{key!r}]` must be a fraction in [0, 1], got {value!r}.")
    split = data.get("eval_split")
    if results and split not in EVAL_SPLITS:
        raise ValueError(
            f"`card_data['eval_split']` must be one of {list(EVAL_SPLITS)} when results are given (say which split "
            f"the accuracies come from), got {split!r}."
        )
    data["results"] = {key: float(results[key]) for key in RESULT_NAMES if key in results}
    return data


def is_generated(readme_text: str) -> bool:
    """Whether a README.md text is a card that hf_tip generated (and may overwrite)."""
    return MARKER in readme_text


def read_card_data(readme_text: str) -> dict[str, Any] | None:
    """The `card_data` stored in a generated card, or `None` when the text is not one."""
    match = _CARD_DATA_RE.search(readme_text)
    return json.loads(match.group(1)) if match else None


def _hub_model_id(name: str | None) -> str | None:
    """`name` when it reads as a Hub repo id (not a local folder), else `None`."""
    if not name or os.path.isdir(name) or not _REPO_ID_RE.fullmatch(name) or name.startswith("."):
        return None  # a folder (also `./clip` or `../clip` seen from another directory) is no Hub id
    try:
        validate_repo_id(name)
    except HFValidationError:
        return None
    return name


def _marker(card_data: Mapping[str, Any]) -> str:
    """The HTML comment that marks a generated card and stores its `card_data` (escaped so it cannot close early)."""
    payload = json.dumps(dict(card_data), sort_keys=True, ensure_ascii=True).replace("<", "\\u003c")
    payload = payload.replace(">", "\\u003e")
    return (
        f"{MARKER}: written by hf_tip, which rewrites this card on save and push; delete this comment to keep your "
        f"edits. card_data={payload} -->"
    )


def render_model_card(
    config, card_data: Mapping[str, Any] | None = None, model_id: str | None = None, tags: list[str] | None = None
) -> ModelCard:
    r"""
    Render the model card of a Tip-Adapter.

    Args:
        config ([`TipAdapterConfig`]): the model's configuration (classes, templates, alpha, beta, shots, backbone).
        card_data (`dict`, *optional*): what was measured (see the module docstring); checked here.
        model_id (`str`, *optional*): the Hub repo id or folder the card's usage examples load from.
        tags (`list[str]`, *optional*): tags added to hf_tip's own (`tip-adapter`, `clip`, `few-shot`, `hf-tip`).

    Returns:
        [`huggingface_hub.ModelCard`] whose metadata holds `library_name`, `pipeline_tag`, `tags`, `base_model`,
        `datasets`, `license` and, given results, a `model-index`.
    """
    data = validate_card_data(card_data)
    dataset = data.get("dataset_name")
    split = data.get("eval_split")
    num_shots = data.get("num_shots") or config.num_shots
    model_id = model_id or "path/to/tip-adapter"
    model_name = model_id.rstrip("/").split("/")[-1] or "tip-adapter"
    base_model = _hub_model_id(config.clip_name_or_path)
    results = [(RESULT_NAMES[key], value) for key, value in data["results"].items()]
    eval_results = [
        EvalResult(
            task_type="image-classification",
            task_name="Few-shot image classification",
            dataset_type=dataset or "imagefolder",
            dataset_name=dataset or "local image folders",
            dataset_split=split,
            metric_type="accuracy",
            metric_name=f"{RESULT_NAMES[key]} accuracy"
            + ("" if key == "zero_shot_accuracy" else f" ({num_shots}-shot)"),
            metric_value=value,
        )
        for key, value in data["results"].items()
    ]
    metadata = ModelCardData(
        library_name="transformers",  # transformers loads it (pipeline, Auto classes); hf-tip is a tag
        pipeline_tag="image-classification",
        tags=TAGS + [tag for tag in tags or [] if tag not in TAGS],
        base_model=base_model,
        datasets=[dataset] if _hub_model_id(dataset) else None,
        license=data.get("license") or DEFAULT_LICENSE,
        metrics=["accuracy"] if eval_results else None,
        model_name=model_name if eval_results else None,
        eval_results=eval_results or None,
    )
    labels = [config.id2label[i] for i in sorted(config.id2label)]
    return ModelCard.from_template(
        metadata,
        template_path=str(TEMPLATE_PATH),
        marker=_marker(data),
        model_name=model_name,
        repo_id=model_id,
        base_model=base_model,
        backbone=config.clip_name_or_path,
        dataset_name=_hub_model_id(dataset),
        num_classes=len(labels),
        class_names=list(enumerate(labels)),
        num_shots=num_shots,
        cache_size=config.cache_size,
        augment_epochs=config.augment_epochs,
        alpha=f"{config.alpha:.4g}",
        beta=f"{config.beta:.4g}",
        finetuned=bool(config.finetune_keys),
        templates=list(config.templates),
        results=results,
        eval_split=split,
        command=data.get("command"),
    )


def write_model_card(
    model, save_directory: str | os.PathLike, model_id: str | None = None, tags: list[str] | None = None
) -> Path | None:
    r"""
    Write `README.md` into a saved Tip-Adapter folder from `model.config` and `model.card_data`.

    A README.md that hf_tip did not generate is kept: a `UserWarning` says so and nothing is written.

    Args:
        model ([`TipAdapterForImageClassification`]): the saved model.
        save_directory (`str` or `os.PathLike`): the folder `save_pretrained` wrote.
        model_id (`str`, *optional*): the Hub repo id for the usage examples; defaults to `save_directory`.
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


__all__ = ["is_generated", "read_card_data", "render_model_card", "validate_card_data", "write_model_card"]
