"""hf-tip: Tip-Adapter (training-free few-shot CLIP adaptation) and its relatives for the Hugging Face ecosystem."""

from .methods import Method, get_method, register_method, registered_methods
from .models.configuration_clip_adapter import ClipAdapterConfig
from .models.configuration_gda import GDAConfig
from .models.configuration_linear_probe import LinearProbeConfig
from .models.configuration_tip_adapter import TipAdapterConfig
from .models.configuration_tip_x import TipXConfig
from .models.configuration_zero_shot import ZeroShotConfig
from .models.modeling_clip_adapter import ClipAdapterForImageClassification
from .models.modeling_gda import GDAForImageClassification
from .models.modeling_linear_probe import LinearProbeForImageClassification
from .models.modeling_tip_adapter import TipAdapterForImageClassification
from .models.modeling_tip_x import TipXForImageClassification
from .models.modeling_zero_shot import ZeroShotForImageClassification
from .pipeline.compare import CompareConfig, ComparisonResult, compare_methods
from .training.args import CLIP_ADAPTER_RECIPE, TIP_ADAPTER_F_RECIPE

__version__ = "0.2.0"

__all__ = [
    "ClipAdapterConfig",
    "ClipAdapterForImageClassification",
    "CompareConfig",
    "ComparisonResult",
    "GDAConfig",
    "GDAForImageClassification",
    "LinearProbeConfig",
    "Method",
    "LinearProbeForImageClassification",
    "TipAdapterConfig",
    "TipAdapterForImageClassification",
    "TipXConfig",
    "TipXForImageClassification",
    "ZeroShotConfig",
    "ZeroShotForImageClassification",
    "__version__",
    "compare_methods",
    "get_method",
    "register_method",
    "registered_methods",
]

# The built-in methods, in the order tables list them; plugins register through the `hf_tip.methods` entry points.
register_method(
    "zero-shot",
    ZeroShotConfig,
    ZeroShotForImageClassification,
    label="Zero-shot CLIP",
    paper="https://arxiv.org/abs/2103.00020",
)
register_method(
    "linear-probe",
    LinearProbeConfig,
    LinearProbeForImageClassification,
    label="Linear probe",
    paper="https://arxiv.org/abs/2103.00020",
)
register_method(
    "clip-adapter",
    ClipAdapterConfig,
    ClipAdapterForImageClassification,
    label="CLIP-Adapter",
    paper="https://arxiv.org/abs/2110.04544",
    trains=True,
    recipe=CLIP_ADAPTER_RECIPE,
)
register_method(
    "tip-adapter",
    TipAdapterConfig,
    TipAdapterForImageClassification,
    label="Tip-Adapter",
    paper="https://arxiv.org/abs/2207.09519",
)
register_method(
    "tip-adapter-f",
    TipAdapterConfig,
    TipAdapterForImageClassification,
    label="Tip-Adapter-F",
    paper="https://arxiv.org/abs/2207.09519",
    trains=True,
    recipe=TIP_ADAPTER_F_RECIPE,
)
register_method(
    "tip-x", TipXConfig, TipXForImageClassification, label="TIP-X", paper="https://arxiv.org/abs/2211.16198"
)
register_method("gda", GDAConfig, GDAForImageClassification, label="GDA", paper="https://arxiv.org/abs/2402.04087")
