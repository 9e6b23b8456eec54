"""hf-tip: Tip-Adapter (training-free few-shot CLIP adaptation) and its relatives for the Hugging Face ecosystem."""

from transformers import AutoConfig, AutoModelForImageClassification

from .compare import CompareConfig, ComparisonResult, compare_methods
from .configuration_clip_adapter import ClipAdapterConfig
from .configuration_gda import GDAConfig
from .configuration_linear_probe import LinearProbeConfig
from .configuration_tip_adapter import TipAdapterConfig
from .configuration_tip_x import TipXConfig
from .configuration_zero_shot import ZeroShotConfig
from .modeling_clip_adapter import ClipAdapterForImageClassification
from .modeling_gda import GDAForImageClassification
from .modeling_linear_probe import LinearProbeForImageClassification
from .modeling_tip_adapter import TipAdapterForImageClassification
from .modeling_tip_x import TipXForImageClassification
from .modeling_zero_shot import ZeroShotForImageClassification

__version__ = "0.2.0"

__all__ = [
    "ClipAdapterConfig",
    "ClipAdapterForImageClassification",
    "CompareConfig",
    "ComparisonResult",
    "GDAConfig",
    "GDAForImageClassification",
    "LinearProbeConfig",
    "LinearProbeForImageClassification",
    "TipAdapterConfig",
    "TipAdapterForImageClassification",
    "TipXConfig",
    "TipXForImageClassification",
    "ZeroShotConfig",
    "ZeroShotForImageClassification",
    "__version__",
    "compare_methods",
]

# Every head registers with the Auto classes here, once: `pipeline("image-classification", model=folder)` then needs
# no other argument, and `register_for_auto_class` writes the `auto_map` that remote-code loading follows.
for _config, _model in (
    (ZeroShotConfig, ZeroShotForImageClassification),
    (TipAdapterConfig, TipAdapterForImageClassification),
    (TipXConfig, TipXForImageClassification),
    (ClipAdapterConfig, ClipAdapterForImageClassification),
    (LinearProbeConfig, LinearProbeForImageClassification),
    (GDAConfig, GDAForImageClassification),
):
    AutoConfig.register(_config.model_type, _config, exist_ok=True)
    AutoModelForImageClassification.register(_config, _model, exist_ok=True)
    _config.register_for_auto_class()
    _model.register_for_auto_class("AutoModelForImageClassification")
