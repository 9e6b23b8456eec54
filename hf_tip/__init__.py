"""hf-tip: Tip-Adapter (training-free few-shot CLIP adaptation) for the Hugging Face ecosystem."""

from transformers import AutoConfig, AutoModelForImageClassification

from .configuration_tip_adapter import TipAdapterConfig
from .modeling_tip_adapter import TipAdapterForImageClassification

__version__ = "0.1.0"

__all__ = ["TipAdapterConfig", "TipAdapterForImageClassification", "__version__"]

AutoConfig.register(TipAdapterConfig.model_type, TipAdapterConfig, exist_ok=True)
AutoModelForImageClassification.register(TipAdapterConfig, TipAdapterForImageClassification, exist_ok=True)
TipAdapterConfig.register_for_auto_class()
TipAdapterForImageClassification.register_for_auto_class("AutoModelForImageClassification")
