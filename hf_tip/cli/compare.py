"""`hf-tip compare`: every method on the same few-shot samples and the same validation / test splits, for several
seeds and shot counts; writes `results.json`, `results.md` and `accuracy_vs_shots.png` (see `hf_tip.pipeline.compare`).

    hf-tip compare --model_name_or_path openai/clip-vit-base-patch16 --dataset_name timm/eurosat-rgb \\
        --template_set eurosat --seeds 1 2 3 --num_shots 1 2 4 8 16 --output_dir compare-eurosat
    hf-tip compare --demo_data --seeds 1 2 --num_shots 1 4 --output_dir compare-textile   # offline demo images
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from ..hub.redact import redact_command
from ..pipeline.compare import METHODS, CompareConfig, check_methods, compare_methods
from .demo import FALLBACK as RANDOM_INIT  # the demo's label of its offline random-init backbone

HELP = "Compare every method (zero-shot, linear probe, CLIP-Adapter, Tip-Adapter(-F), TIP-X, GDA) on the same data."
DEFAULT_BACKBONE = "openai/clip-vit-base-patch16"


def _help(text: str, **extra) -> dict:
    return {"help": text, **extra}


@dataclass
class CompareArguments:
    """The flags of `hf-tip compare`."""

    _argument_group_name: ClassVar[str] = "compare"

    output_dir: str = field(metadata=_help("Folder for results.json, results.md, accuracy_vs_shots.png (and models)."))
    model_name_or_path: str | None = field(
        default=None,
        metadata=_help(
            f"The CLIP-family backbone (Hub id or local folder). Unset: {DEFAULT_BACKBONE}; with --demo_data and no "
            "Hub access, a random-init CLIP, labelled as such everywhere."
        ),
    )
    dataset_name: str | None = field(default=None, metadata=_help("A dataset on the Hub (or a local dataset folder)."))
    dataset_config_name: str | None = field(default=None, metadata=_help("The dataset's configuration name."))
    train_dir: str | None = field(default=None, metadata=_help("An imagefolder directory for the train split."))
    validation_dir: str | None = field(default=None, metadata=_help("An imagefolder directory for validation."))
    test_dir: str | None = field(default=None, metadata=_help("An imagefolder directory for the test split."))
    demo_data: bool = field(
        default=False, metadata=_help("The demo's textile images (conformal-clip-data), split 50/25/25 per class.")
    )
    data_dir: str | None = field(default=None, metadata=_help("With --demo_data: nominal/, local/, global/ folders."))
    image_column: str = field(default="image", metadata=_help("The column holding the images."))
    label_column: str = field(default="label", metadata=_help("The column holding the labels."))
    cache_dir: str | None = field(default=None, metadata=_help("Where `datasets` stores downloaded data."))
    max_eval_samples: int | None = field(
        default=None, metadata=_help("Score on at most this many (seeded) validation and test images each.")
    )
    methods: list[str] = field(
        default_factory=lambda: list(METHODS), metadata=_help(f"Methods to compare: any of {', '.join(METHODS)}.")
    )
    seeds: list[int] = field(default_factory=lambda: [1, 2, 3], metadata=_help("Few-shot samples (mean ± std)."))
    num_shots: list[int] = field(
        default_factory=lambda: [1, 2, 4, 8, 16], metadata=_help("Shots per class (each seed's sets are nested).")
    )
    augment_epochs: int = field(default=10, metadata=_help("Augmented views per few-shot image (training-free)."))
    num_train_views: int | None = field(
        default=None,
        metadata=_help(
            "Further views the trained heads train on (default: each method's recipe: CLIP-Adapter 10, "
            "Tip-Adapter-F --augment_epochs)."
        ),
    )
    num_train_epochs: int | None = field(
        default=None, metadata=_help("Epochs of the trained heads (default: each method's recipe).")
    )
    template_set: str | None = field(
        default=None,
        metadata=_help("A dataset preset (templates, class renames, Tip-Adapter settings), e.g. eurosat."),
    )
    templates: list[str] | None = field(default=None, metadata=_help('Prompt templates, e.g. "a photo of a {}.".'))
    class_names: list[str] | None = field(default=None, metadata=_help("Class names in label order."))
    method_config: str | None = field(
        default=None,
        metadata=_help('JSON of config arguments per method, e.g. \'{"linear-probe": {"max_iter": 100}}\'.'),
    )
    allow_fewer_shots: bool = field(default=False, metadata=_help("Take all images of classes with fewer shots."))
    feature_cache_dir: str | None = field(default=None, metadata=_help("Store/reuse validation and test features."))
    batch_size: int = field(default=64, metadata=_help("Images per forward pass."))
    device: str | None = field(default=None, metadata=_help("cuda, cuda:1, mps, cpu (unset: cuda if available)."))
    save_models: bool = field(default=False, metadata=_help("Keep every fitted model: OUTPUT_DIR/models/<method>/..."))
    overwrite_output_dir: bool = field(default=False, metadata=_help("Write into a non-empty --output_dir."))
    disable_tqdm: bool = field(default=False, metadata=_help("No progress bars."))

    def __post_init__(self):
        self.methods = check_methods(self.methods)
        sources = [self.dataset_name is not None, self.demo_data, bool(self.train_dir or self.validation_dir)]
        if sum(sources) != 1 and not (self.test_dir and sum(sources) == 0):
            raise ValueError(
                "Pass exactly one of --dataset_name, --demo_data, or --train_dir/--validation_dir/--test_dir."
            )
        if self.method_config is not None:
            self.method_config = _method_config(self.method_config)

    def compare_config(self, output_dir: Path) -> CompareConfig:
        return CompareConfig(
            methods=self.methods, seeds=self.seeds, num_shots=self.num_shots, augment_epochs=self.augment_epochs,
            num_train_views=self.num_train_views, num_train_epochs=self.num_train_epochs,
            template_set=self.template_set, templates=self.templates, class_names=self.class_names,
            method_config=self.method_config or {}, image_column=self.image_column, label_column=self.label_column,
            max_eval_samples=self.max_eval_samples, feature_cache_dir=self.feature_cache_dir,
            batch_size=self.batch_size, allow_fewer_shots=self.allow_fewer_shots,
            save_models_dir=str(output_dir / "models") if self.save_models else None,
            show_progress=not self.disable_tqdm,
        )  # fmt: skip


ARGUMENTS = (CompareArguments,)


def _method_config(text: str) -> dict:
    """`--method_config`: JSON text, or a path to a .json file, mapping method names to config arguments."""
    source = Path(text).read_text() if text.endswith(".json") and Path(text).is_file() else text
    try:
        value = json.loads(source)
    except json.JSONDecodeError as error:
        raise ValueError(f"--method_config is not valid JSON ({error}): {text!r}") from None
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise ValueError(f'--method_config must map method names to objects, e.g. {{"gda": {{...}}}}; got {text!r}.')
    unknown = sorted(set(value) - set(METHODS))
    if unknown:
        raise ValueError(f"--method_config names unknown method(s) {unknown}; the methods are: {', '.join(METHODS)}.")
    return value


def load_data(args: CompareArguments):
    """The `DatasetDict` the data flags name: the demo's textile images, a Hub dataset or image folders."""
    if args.demo_data:
        from .demo import LABELS, textile_dataset, textile_root

        dataset = textile_dataset(textile_root(args.data_dir), seed=1)
        return dataset, list(args.class_names or LABELS)
    from ..data.loading import load_image_dataset

    dataset = load_image_dataset(
        args.dataset_name, args.dataset_config_name, args.train_dir, args.validation_dir, args.test_dir,
        image_column=args.image_column, label_column=args.label_column, cache_dir=args.cache_dir,
    )  # fmt: skip
    return dataset, args.class_names


def load_backbone(args: CompareArguments, seed: int):
    """`(backbone, processor, label)`: the named backbone; unset, the default CLIP, or with --demo_data and no Hub
    access the demo's random-init fallback (labelled)."""
    if args.model_name_or_path is not None:
        return args.model_name_or_path, None, args.model_name_or_path
    if not args.demo_data:
        return DEFAULT_BACKBONE, None, DEFAULT_BACKBONE
    from ..backbones import random_clip
    from .demo import load_default_backbone, warn_fallback

    loaded = load_default_backbone()
    if loaded is not None:
        return loaded[0], loaded[1], DEFAULT_BACKBONE
    warn_fallback()
    model, processor = random_clip("small", seed=seed)
    return model, processor, RANDOM_INIT


def run(args: CompareArguments, *, argv: list[str] | None = None) -> int:
    """Compare the methods and write the report (parsed and its errors reported by `hf_tip.cli`)."""
    from ..pipeline.report import write_report
    from .common import check_output_dir, resolve_device

    output_dir = check_output_dir(args.output_dir, args.overwrite_output_dir)  # before any work
    device = resolve_device(args.device)
    dataset, class_names = load_data(args)
    config = args.compare_config(output_dir)
    config.class_names = class_names
    backbone, processor, label = load_backbone(args, seed=min(args.seeds))
    result = compare_methods(backbone, dataset, config, processor=processor, device=device, backbone_label=label)
    command = redact_command("hf-tip", argv)
    data = "the demo's textile images" if args.demo_data else args.dataset_name or "image folders"
    title = f"Few-shot methods on {data}"
    if label == RANDOM_INIT:
        title += " (RANDOM-INIT backbone: the mechanics, not CLIP's accuracy)"
    paths = write_report(result, output_dir, extra={"command": command}, title=title)
    print(paths["markdown"].read_text())
    print(f"Wrote {paths['json']}, {paths['markdown']} and {paths['plot']}.")
    return 0


__all__ = ["ARGUMENTS", "HELP", "CompareArguments", "run"]

if __name__ == "__main__":
    from . import main

    raise SystemExit(main(["compare", *sys.argv[1:]]))
