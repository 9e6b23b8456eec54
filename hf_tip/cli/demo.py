"""`hf-tip demo`: few-shot textile-defect classification, zero-shot CLIP vs training-free Tip-Adapter.

The images are the simulated textile surfaces of the PyPI package `conformal-clip-data` (classes `nominal`, `local`
and `global` defects, 1000 / 500 / 500 images), split per class into a few-shot pool (50 %), validation (25 %) and
test (25 %) by a seeded, version-independent shuffle. The demo builds the cache from `--num_shots` images per class,
searches alpha/beta on validation, reports both accuracies on test and saves a folder that
`pipeline("image-classification", model=folder)` loads.

Without `--model_name_or_path` it uses `openai/clip-vit-base-patch16`; when that cannot be loaded (no Hub access and
not in the local cache) it warns loudly and continues with a randomly initialised CLIP, labelled as such everywhere.
"""

from __future__ import annotations

import json
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlparse

import numpy as np
from transformers import CLIPModel, CLIPProcessor

from ..backbones import random_clip
from ..data.datasets import dataset_class_names, declared_mapping
from ..hub.redact import redact_command
from ..models.seeding import shuffle_keys
from ..pipeline.procedure import create_adapter, fit_training_free
from .arguments import DEFAULT_BACKBONE, AdapterArguments, ComputeArguments
from .common import check_output_dir, format_results, resolve_device, saved_message, write_results

HELP = "Few-shot textile-defect classification demo: zero-shot CLIP vs Tip-Adapter."
CLASS_FOLDERS = ("nominal", "local", "global")
LABELS = ("nominal", "local defect", "global defect")
PROMPT_NAMES = ("no defect", "a small local defect", "a global defect")
TEMPLATES = ("a close-up photo of woven fabric with {}.",)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
FALLBACK = "random-init (offline fallback)"
DEFAULT_OUTPUT_DIR = "./tip-adapter-textile-demo"
DEMO_TAG = "textile defects (conformal-clip-data)"


@dataclass
class DemoArguments:
    """The demo's backbone, images and output folder."""

    _argument_group_name: ClassVar[str] = "demo"

    model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": f"The CLIP backbone (Hub id or local folder). Unset: {DEFAULT_BACKBONE}, or a random-init CLIP with "
            "a loud warning when that cannot be loaded offline."
        },
    )
    data_dir: str | None = field(
        default=None,
        metadata={
            "help": "A folder with nominal/, local/ and global/ image sub-folders (unset: the textile images of the "
            "conformal-clip-data package)."
        },
    )
    max_eval_samples: int = field(
        default=150, metadata={"help": "Validation and test images each, a seeded subset (0 for all)."}
    )
    output_dir: str = field(default=DEFAULT_OUTPUT_DIR, metadata={"help": "Folder for the saved model."})
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Write into a non-empty --output_dir (a previous demo output is replaced without it)."},
    )

    def __post_init__(self):
        if isinstance(self.max_eval_samples, bool) or self.max_eval_samples < 0:
            raise ValueError(f"--max_eval_samples must be an integer >= 0 (0 for all), got {self.max_eval_samples!r}.")


@dataclass
class DemoAdapterArguments(AdapterArguments):
    """[`AdapterArguments`] with the demo's default of 2 augmented views."""

    augment_epochs: int | None = field(default=2, metadata={"help": "Augmented views averaged into each cache key."})


ARGUMENTS = (DemoArguments, DemoAdapterArguments, ComputeArguments)


def textile_root(data_dir: str | None) -> Path:
    """The image folder: `--data_dir`, else the one shipped in `conformal-clip-data`."""
    if data_dir is not None:
        return Path(data_dir)
    try:
        import conformal_clip_data
    except ImportError as error:
        raise ValueError(
            "The demo's images come from the PyPI package `conformal-clip-data`: `pip install conformal-clip-data` "
            "(or `pip install hf-tip[demo]`), or pass --data_dir with nominal/, local/ and global/ sub-folders."
        ) from error
    return Path(conformal_clip_data.textile_simulated_root())


def textile_dataset(root: Path, seed: int = 1, max_eval_samples: int | None = None):
    """A `DatasetDict` (image, label: ClassLabel) with `train` (50 % of each class), `validation` and `test` (25 % each,
    then at most `max_eval_samples` each), split by `shuffle_keys(seed)` over the sorted file list."""
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Image

    missing = [name for name in CLASS_FOLDERS if not (root / name).is_dir()]
    if missing:
        raise ValueError(
            f"--data_dir {str(root)!r} lacks the class folder(s) {missing}; it needs {list(CLASS_FOLDERS)}."
        )
    files, labels = [], []
    for label, name in enumerate(CLASS_FOLDERS):
        found = sorted(p for p in (root / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if len(found) < 4:
            raise ValueError(
                f"Class folder {str(root / name)!r} holds {len(found)} images; the demo needs at least 4."
            )
        files += [str(p) for p in found]
        labels += [label] * len(found)
    labels_np, keys = np.asarray(labels), shuffle_keys(np.arange(len(files)), seed)
    parts: dict[str, list[int]] = {"train": [], "validation": [], "test": []}
    for label in range(len(CLASS_FOLDERS)):
        members = np.flatnonzero(labels_np == label)
        members = members[np.argsort(keys[members], kind="stable")]
        half, three_quarters = len(members) // 2, (3 * len(members)) // 4
        parts["train"] += members[:half].tolist()
        parts["validation"] += members[half:three_quarters].tolist()
        parts["test"] += members[three_quarters:].tolist()
    for split in ("validation", "test"):  # a seeded subset; classes keep about their shares
        if max_eval_samples and len(parts[split]) > max_eval_samples:
            ranked = sorted(parts[split], key=lambda i: keys[i])
            parts[split] = ranked[:max_eval_samples]
    features = Features({"image": Image(), "label": ClassLabel(names=list(LABELS))})
    return DatasetDict(
        {
            split: Dataset.from_dict(
                {"image": [files[i] for i in sorted(idx)], "label": [labels[i] for i in sorted(idx)]},
                features=features,
            )
            for split, idx in parts.items()
        }
    )


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face Hub endpoint accepts a TCP connection (and offline mode is off)."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout).close()
    except OSError:
        return False
    return True


def load_default_backbone() -> tuple[CLIPModel, CLIPProcessor] | None:
    """`openai/clip-vit-base-patch16` from the local cache, else from the Hub when it is reachable; `None` when neither
    works (checked up front so that an offline machine does not wait through download retries)."""
    for local_only in (True, False):
        if not local_only and not hub_reachable():
            return None
        try:
            return (
                CLIPModel.from_pretrained(DEFAULT_BACKBONE, local_files_only=local_only),
                CLIPProcessor.from_pretrained(DEFAULT_BACKBONE, local_files_only=local_only),
            )
        except OSError:
            continue
    return None


def warn_fallback() -> None:
    bar = "!" * 100
    message = (
        f"\n{bar}\n"
        f"WARNING: could not load the CLIP backbone {DEFAULT_BACKBONE} (no Hugging Face Hub access and not in the\n"
        "local cache). The demo CONTINUES WITH A RANDOMLY INITIALISED CLIP (hf_tip.backbones.random_clip('small')):\n"
        "its numbers show the MECHANICS of Tip-Adapter (sampling, cache, search, saving), NOT CLIP's accuracy.\n"
        "For the real demo: run it with Hub access once, or pass --model_name_or_path <a local CLIP folder>.\n"
        f"{bar}\n"
    )
    print(message, file=sys.stderr, flush=True)


def previous_demo_output(path: Path) -> bool:
    """Whether `path` holds a folder written by an earlier `hf-tip demo` (which a rerun may replace)."""
    try:
        return json.loads((path / "results.json").read_text()).get("demo") == DEMO_TAG
    except (OSError, ValueError, AttributeError):
        return False


def run(args: DemoArguments, adapter: DemoAdapterArguments, compute: ComputeArguments, *, argv: list[str]) -> int:
    output_dir = Path(args.output_dir)
    check_output_dir(args.output_dir, args.overwrite_output_dir or previous_demo_output(output_dir))  # before any work
    device = resolve_device(compute.device)
    dataset = textile_dataset(textile_root(args.data_dir), adapter.seed, args.max_eval_samples or None)
    templates = list(adapter.templates or TEMPLATES)
    labels = list(adapter.class_names or LABELS)
    if len(labels) != len(LABELS):
        raise ValueError(f"--class_names needs {len(LABELS)} names (for {list(CLASS_FOLDERS)}), got {labels}.")
    prompts = labels if adapter.class_names else list(PROMPT_NAMES)

    if args.model_name_or_path is not None:
        backbone_label = args.model_name_or_path
        model = create_adapter(args.model_name_or_path, labels, templates=templates, prompt_names=prompts)
    else:
        loaded = load_default_backbone()
        if loaded is None:
            warn_fallback()
            loaded, backbone_label = random_clip("small", seed=adapter.seed), FALLBACK
        else:
            backbone_label = DEFAULT_BACKBONE
        model = create_adapter(loaded[0], labels, templates=templates, prompt_names=prompts, processor=loaded[1])

    model.to(device)
    result = fit_training_free(
        model,
        dataset,
        num_shots=adapter.num_shots,
        seed=adapter.seed,
        augment_epochs=adapter.augment_epochs,
        feature_cache_dir=adapter.feature_cache_dir,
        search_scale=adapter.search_scale,
        search_step=adapter.search_step,
        allow_fewer_shots=adapter.allow_fewer_shots,
        batch_size=compute.batch_size,
        show_progress=not compute.disable_tqdm,
        dataset_name=None,  # not a Hub dataset; results.json says what it is
        command=redact_command("hf-tip", argv),
        class_mapping=declared_mapping(dataset_class_names(dataset["train"], "label"), labels),
    )
    results = {"backbone": backbone_label, "demo": DEMO_TAG, **result.to_dict(), "templates": templates}
    if backbone_label == FALLBACK:
        results["note"] = "Random-init backbone: the numbers show the mechanics, not CLIP's accuracy."
        model.config.backbone_name_or_path = FALLBACK  # what config.json and the model card name as the backbone
    model.save_pretrained(output_dir)
    write_results(output_dir, results)

    title = f"Tip-Adapter demo: {DEMO_TAG}, {adapter.num_shots} shots per class"
    backbone_line = f"backbone: {backbone_label}"
    if backbone_label == FALLBACK:
        backbone_line += "  <-- RANDOM-INIT: the numbers show the mechanics, not CLIP's accuracy"
    print(f"\n{title}\n{backbone_line}\n{format_results(result)}")
    print(saved_message(output_dir))
    return 0
