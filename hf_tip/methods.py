"""The method registry: one table that every part of hf_tip reads (as PEFT's `register_peft_method` fills PEFT's).

A method is a config class, a model class and one `register_method` call. Registering wires the Auto classes (so
`pipeline("image-classification", model=folder)` and remote code work) and makes the method known by its flag name
to the commands (`hf-tip build --method NAME`, `compare --methods`, `finetune --method`), push's allowlist of model
types, the model card (its name, paper and result key) and the app.

Methods shipped by other packages are found through the `hf_tip.methods` entry-point group: each entry names a
module, and importing it registers (see `docs/adding-a-method.md`)::

    [project.entry-points."hf_tip.methods"]
    my-head = "my_package.my_head"

What a method can do is declared once, on its model class (`has_cache`, `supports_live_updates`) and in its
registration (`trains`, `recipe`); nothing probes for it with `hasattr`.
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from types import MappingProxyType

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "hf_tip.methods"
_NAME_RE = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


@dataclass(frozen=True)
class Method:
    r"""
    One registered method.

    Args:
        name (`str`): the flag name (`hf-tip build --method NAME`), lower case with `-` (e.g. `"tip-adapter-f"`).
        config_class (`type`): its [`ZeroShotConfig`] subclass (its `model_type` names saved folders).
        model_class (`type`): its [`ZeroShotForImageClassification`] subclass.
        label (`str`): how tables, cards and the app name it (e.g. `"Tip-Adapter-F"`).
        paper (`str`, *optional*): a link to the paper, for the card.
        trains (`bool`, *optional*, defaults to `False`):
            Whether the method is trained by the one training loop after the training-free fit (`hf-tip finetune`);
            the model class then implements `enable_training()` (what becomes trainable) and the recipe below.
        recipe (`Mapping`, *optional*):
            The training recipe's defaults (`num_train_epochs`, `learning_rate`, `optimizer`, batch size, views, ...),
            what a `None` field of the run's arguments means for this method. Its one source.
        description (`str`, *optional*): one line for `--help` texts and docs.
    """

    name: str
    config_class: type
    model_class: type
    label: str
    paper: str | None = None
    trains: bool = False
    recipe: Mapping = field(default_factory=dict)
    description: str = ""

    @property
    def model_type(self) -> str:
        return self.config_class.model_type

    @property
    def result_key(self) -> str:
        """The key of its accuracy in results JSON files and the card (`tip-adapter-f` -> `tip_adapter_f_accuracy`)."""
        return self.name.replace("-", "_") + "_accuracy"

    @property
    def has_cache(self) -> bool:
        """Whether its head keeps labelled examples as a key-value cache (the app shows them behind a prediction)."""
        return bool(getattr(self.model_class, "has_cache", False))

    @property
    def supports_live_updates(self) -> bool:
        """Whether examples and classes can be added to a fitted model without refitting (`hf-tip update`)."""
        return bool(getattr(self.model_class, "supports_live_updates", False))


_METHODS: dict[str, Method] = {}
_PLUGIN_ERRORS: dict[str, str] = {}
_plugins_loaded = False


def register_method(
    name: str,
    config_class: type,
    model_class: type,
    *,
    label: str,
    paper: str | None = None,
    trains: bool = False,
    recipe: Mapping | None = None,
    description: str = "",
) -> Method:
    """Register a method under `name` (see [`Method`] for the arguments) and wire its classes into the Auto classes.

    Registering the same name again with the same classes is a no-op; with other classes it is an error (two
    packages claiming one name), as is a `model_type` already taken by another model class."""
    from transformers import AutoConfig, AutoModelForImageClassification, PretrainedConfig, PreTrainedModel

    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(f"A method name is lower case words joined by '-' (e.g. 'tip-adapter'), got {name!r}.")
    if not (isinstance(config_class, type) and issubclass(config_class, PretrainedConfig)):
        raise TypeError(f"Method {name!r}: `config_class` must be a configuration class, got {config_class!r}.")
    if not (isinstance(model_class, type) and issubclass(model_class, PreTrainedModel)):
        raise TypeError(f"Method {name!r}: `model_class` must be a PreTrainedModel class, got {model_class!r}.")
    model_type = getattr(config_class, "model_type", "")
    if not model_type:
        raise ValueError(f"Method {name!r}: {config_class.__name__} has no `model_type`.")
    if getattr(model_class, "config_class", None) is not config_class:
        raise ValueError(
            f"Method {name!r}: {model_class.__name__}.config_class is {getattr(model_class, 'config_class', None)!r}, "
            f"not {config_class.__name__}."
        )
    if not isinstance(label, str) or not label.strip():
        raise ValueError(f"Method {name!r}: `label` must be a non-empty string, got {label!r}.")
    method = Method(
        name, config_class, model_class, label.strip(), paper, bool(trains), MappingProxyType(dict(recipe or {})),
        description,
    )  # fmt: skip
    known = _METHODS.get(name)
    if known is not None:
        if (known.config_class, known.model_class) != (config_class, model_class):
            raise ValueError(
                f"The method name {name!r} is already registered by {known.model_class.__module__}."
                f"{known.model_class.__name__}; choose another name for {model_class.__module__}.{model_class.__name__}."
            )
        _METHODS[name] = method
        return method
    for other in _METHODS.values():
        if other.model_type == model_type and other.model_class is not model_class:
            raise ValueError(
                f"Method {name!r}: model_type {model_type!r} is already used by {other.model_class.__name__} "
                f"(method {other.name!r}); give {config_class.__name__} a `model_type` of its own."
            )
    if not any(other.model_type == model_type for other in _METHODS.values()):
        AutoConfig.register(model_type, config_class, exist_ok=True)
        AutoModelForImageClassification.register(config_class, model_class, exist_ok=True)
        # `register_for_auto_class` writes the `auto_map` that remote-code loading (trust_remote_code) follows
        config_class.register_for_auto_class()
        model_class.register_for_auto_class("AutoModelForImageClassification")
    _METHODS[name] = method
    return method


def load_plugins() -> None:
    """Import the modules named by the `hf_tip.methods` entry points (once); each registers its methods. A plugin
    that fails to import is logged and named when its method is asked for, and never hides the built-in methods."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            importlib.import_module(entry.value.split(":")[0])
        except Exception as error:  # a broken third-party package must not break hf_tip
            _PLUGIN_ERRORS[entry.name] = f"{entry.value}: {type(error).__name__}: {error}"
            logger.warning("hf_tip: the method plugin %r (%s) failed to import: %s", entry.name, entry.value, error)


def registered_methods() -> MappingProxyType:
    """Every registered method by name, built-in ones first, then plugins in the order they registered."""
    load_plugins()
    return MappingProxyType(_METHODS)


def method_names(*, trains: bool | None = None) -> list[str]:
    """The registered method names (only those that train, or only those that do not, with `trains=`)."""
    return [m.name for m in registered_methods().values() if trains is None or m.trains == trains]


def get_method(name: str) -> Method:
    """The method registered as `name`; a `ValueError` listing the known names (and any plugin that failed to
    import) otherwise."""
    methods = registered_methods()
    if name in methods:
        return methods[name]
    broken = "".join(f" The plugin {k!r} failed to import ({v})." for k, v in _PLUGIN_ERRORS.items())
    raise ValueError(f"Unknown method {name!r}; the methods are: {', '.join(methods)}.{broken}")


def methods_for_model_type(model_type: str) -> list[Method]:
    """The methods whose saved folders have this `model_type` (Tip-Adapter and Tip-Adapter-F share one)."""
    return [m for m in registered_methods().values() if m.model_type == model_type]


def model_types() -> frozenset[str]:
    """The `model_type` of every registered method: the folders hf_tip loads, pushes and serves."""
    return frozenset(m.model_type for m in registered_methods().values())


def method_of_config(config) -> Method | None:
    """The method a loaded or saved config belongs to: a fine-tuned Tip-Adapter (`finetune_keys`) is Tip-Adapter-F,
    otherwise the first method registered for its `model_type`."""
    candidates = methods_for_model_type(getattr(config, "model_type", None) or "")
    if not candidates:
        return None
    trained = [m for m in candidates if m.trains]
    if trained and getattr(config, "finetune_keys", False):
        return trained[0]
    untrained = [m for m in candidates if not m.trains]
    return (untrained or candidates)[0]


__all__ = [
    "ENTRY_POINT_GROUP",
    "Method",
    "get_method",
    "load_plugins",
    "method_names",
    "method_of_config",
    "methods_for_model_type",
    "model_types",
    "register_method",
    "registered_methods",
]
