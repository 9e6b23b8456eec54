"""Configuration shared by every hf-tip head: the dual-encoder backbone, its class names and its prompts."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any, ClassVar

from transformers import AutoConfig, CLIPConfig, PreTrainedConfig
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

DEFAULT_TEMPLATES = ("a photo of a {}.",)
# The largest weight, sharpness or rate a config accepts: beyond it products and `exp` in the logits overflow to inf
# (float16 holds 65504, float32 3.4e38), and the logits become NaN.
MAX_VALUE = 1e6


def check_number(
    name: str,
    value: Any,
    *,
    low: float = 0.0,
    high: float = MAX_VALUE,
    low_open: bool = False,
    integer: bool = False,
    optional: bool = False,
) -> Any:
    """`value` as a float (or int with `integer`) after checking it lies in `[low, high]` (`(low, high]` with
    `low_open`); `None` passes with `optional`. Raises a `ValueError` naming the field `name`."""
    if value is None and optional:
        return None
    kind = "an integer" if integer else "a finite number"
    bound = f"> {low}" if low_open else f">= {low}"
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type or (not integer and not math.isfinite(value)):
        raise ValueError(f"`{name}` must be {kind} {bound} and <= {high:g}, got {value!r}.")
    if value < low or (low_open and value == low) or value > high:
        raise ValueError(f"`{name}` must be {kind} {bound} and <= {high:g}, got {value!r}.")
    return int(value) if integer else float(value)


def number_field(**bounds: Any) -> Callable[[str, Any], Any]:
    """A per-field check for `field_checks`: `check_number` with these bounds."""
    return partial(check_number, **bounds)


def _backbone_config(value, argument: str = "backbone_config") -> PreTrainedConfig:
    """A backbone config from a config object, a `to_dict()` (its `model_type` picks the class; CLIP without one),
    or `None` (a default CLIP)."""
    if value is None:
        return CLIPConfig()
    if isinstance(value, PreTrainedConfig):
        return value
    if isinstance(value, dict):
        model_type = value.get("model_type", "clip")
        if model_type not in CONFIG_MAPPING:
            raise ValueError(f"`{argument}` has model_type {model_type!r}, which transformers does not know.")
        return CONFIG_MAPPING[model_type](**{k: v for k, v in value.items() if k != "model_type"})
    raise ValueError(f"`{argument}` must be a dict or a PreTrainedConfig, got {type(value).__name__}.")


def check_templates(templates) -> list[str]:
    """The templates as a list; raises a `ValueError` unless each holds exactly one `{}`."""
    templates = list(DEFAULT_TEMPLATES) if templates is None else templates
    if isinstance(templates, str):
        raise ValueError(f"`templates` must be a list of strings, got the string {templates!r}; wrap it in a list.")
    templates = list(templates)
    if not templates:
        raise ValueError("`templates` must hold at least one template.")
    for template in templates:
        if not isinstance(template, str) or "{}" not in template:
            raise ValueError(f"Every entry of `templates` needs a `{{}}` for the class name, got {template!r}.")
        try:
            template.format("class name")
        except (IndexError, KeyError, ValueError) as error:
            raise ValueError(
                f"Every entry of `templates` must hold exactly one `{{}}` (escape other braces as `{{{{`/`}}}}`), "
                f"got {template!r}: {error!r}."
            ) from None
    return templates


class ZeroShotConfig(PreTrainedConfig):
    r"""
    Configuration of a [`ZeroShotForImageClassification`], and the base of every hf-tip head's configuration: the
    dual-encoder backbone (CLIP, SigLIP, ...), the classes and the prompt templates of the zero-shot text classifier
    `W` `[C,D]`.

    Args:
        backbone_config (`dict` or [`PreTrainedConfig`], *optional*):
            Configuration of the wrapped dual encoder (its `model_type` names the family); nested so that
            `from_pretrained` rebuilds it offline. Defaults to a CLIP configuration. `clip_config` (the first
            release's name) is read as this.
        templates (`list[str]`, *optional*, defaults to `["a photo of a {}."]`):
            Prompt templates, each holding one `{}` for the class name, averaged into the zero-shot weights.
        backbone_name_or_path (`str`, *optional*):
            Where the backbone came from (a Hub id, or a folder's name). `clip_name_or_path` is read as this.
        backbone_revision (`str`, *optional*): the backbone repository's revision (branch, tag or commit).
        save_backbone (`bool`, *optional*, defaults to `True`):
            Whether the saved weights hold the backbone. An adapter-only save (`False`) loads the backbone from
            `backbone_name_or_path` at `backbone_revision`.
        backbone_fingerprint (`str`, *optional*):
            An adapter-only save's SHA-256 over its backbone's weights, checked when the backbone loads.

    Example:

    ```python
    >>> from hf_tip import ZeroShotConfig
    >>> config = ZeroShotConfig(id2label={0: "cat", 1: "dog"}, templates=["a photo of a {}."])
    >>> config.num_labels
    2
    ```
    """

    model_type = "clip-zero-shot"
    sub_configs = {"backbone_config": AutoConfig}
    # Per-field checks `(name, value) -> value`, run by `__init__` and by every later assignment (`config.alpha = x`),
    # so a value that would make the logits NaN never gets in. Subclasses add their own fields' checks.
    field_checks: ClassVar[dict[str, Callable[[str, Any], Any]]] = {}

    def __setattr__(self, key: str, value: Any) -> None:
        key = type(self).attribute_map.get(key, key)
        for klass in type(self).__mro__:
            check = klass.__dict__.get("field_checks", {}).get(key)
            if check is not None:
                value = check(key, value)
                break
        super().__setattr__(key, value)

    def __init__(
        self,
        backbone_config: dict | PreTrainedConfig | None = None,
        templates: list[str] | None = None,
        backbone_name_or_path: str | None = None,
        backbone_revision: str | None = None,
        save_backbone: bool = True,
        backbone_fingerprint: str | None = None,
        **kwargs,
    ):
        legacy_config = kwargs.pop("clip_config", None)  # folders saved by hf-tip 0.1
        legacy_name = kwargs.pop("clip_name_or_path", None)
        if backbone_config is None and legacy_config is not None:
            self.backbone_config = _backbone_config(legacy_config, "clip_config")
        else:
            self.backbone_config = _backbone_config(backbone_config)
        self.templates = check_templates(templates)
        self.backbone_name_or_path = backbone_name_or_path if backbone_name_or_path is not None else legacy_name
        self.backbone_revision = backbone_revision
        self.save_backbone = bool(save_backbone)
        self.backbone_fingerprint = backbone_fingerprint
        super().__init__(**kwargs)
        if sorted(self.id2label) != list(range(len(self.id2label))):
            raise ValueError(f"`id2label` must map the ids 0..C-1 to class names, got ids {sorted(self.id2label)}.")
        labels = [self.id2label[i] for i in range(len(self.id2label))]
        duplicates = sorted({label for label in labels if labels.count(label) > 1})
        if duplicates:
            raise ValueError(f"Class names must be unique; duplicated in `id2label`: {duplicates}.")
        inverse = {label: i for i, label in enumerate(labels)}
        if self.label2id is None:
            self.label2id = inverse
        elif {str(k): int(v) for k, v in self.label2id.items()} != inverse:
            raise ValueError(f"`label2id` {self.label2id} is not the inverse of `id2label` {self.id2label}.")

    @property
    def clip_config(self) -> PreTrainedConfig:
        """The backbone's configuration (the first release's name for `backbone_config`)."""
        return self.backbone_config

    @property
    def clip_name_or_path(self) -> str | None:
        """The first release's name for `backbone_name_or_path`."""
        return self.backbone_name_or_path

    @clip_name_or_path.setter
    def clip_name_or_path(self, value: str | None) -> None:
        self.backbone_name_or_path = value

    @property
    def class_names(self) -> list[str]:
        """The class names, in label order."""
        return [self.id2label[i] for i in range(len(self.id2label))]


__all__ = ["MAX_VALUE", "ZeroShotConfig", "check_number", "check_templates", "number_field"]
