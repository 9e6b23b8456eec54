"""`hf-tip evaluate`: accuracy of a saved Tip-Adapter (folder or Hub id) and of its zero-shot CLIP on a dataset split,
printed as JSON."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from transformers import AutoModelForImageClassification

from ..data.datasets import check_dataset
from ..data.loading import require_split
from ..models.modeling_zero_shot import ZeroShotForImageClassification
from ..pipeline.evaluation import EVAL_SUBSAMPLE_SEED
from ..pipeline.procedure import encode_split, score, subsample
from .arguments import ComputeArguments, DataArguments, load_dataset_from_args
from .common import resolve_device

HELP = "Evaluate a saved Tip-Adapter (folder or Hub id) on a dataset split."
SPLIT_FLAGS = {"train": "--train_dir", "validation": "--validation_dir", "test": "--test_dir"}


@dataclass
class EvaluateArguments:
    """The model, the split and where the report goes."""

    _argument_group_name: ClassVar[str] = "evaluate"

    model_name_or_path: str = field(metadata={"help": "A saved Tip-Adapter: a local folder or a Hub repo id."})
    split: str = field(default="test", metadata={"help": "The split to score."})
    seed: int = field(
        default=EVAL_SUBSAMPLE_SEED,
        metadata={"help": "Seeds the --max_eval_samples subset (default: the one every command uses, so that build, "
                  "compare and evaluate score the same rows)."},
    )  # fmt: skip
    feature_cache_dir: str | None = field(
        default=None, metadata={"help": "Store the split's features here and reuse them on reruns."}
    )
    output_file: str | None = field(
        default=None, metadata={"help": "Also write the JSON result to this file (must not exist yet)."}
    )


ARGUMENTS = (EvaluateArguments, DataArguments, ComputeArguments)


def load_model(name_or_path: str) -> ZeroShotForImageClassification:
    """`from_pretrained`, with a clear error for a local folder that does not exist or holds no model. A name whose
    first folder exists here (`models/missing` next to `models/`), or that starts with `.`, `/` or `~`, or has more
    than one `/`, is a local path, never a Hub id; a `user/name` that is neither here nor loadable from the Hub says
    both."""
    path = Path(name_or_path).expanduser()
    first = Path(name_or_path).parts[0] if Path(name_or_path).parts else name_or_path
    looks_local = (
        path.exists()
        or name_or_path.startswith((".", "/", "~"))
        or name_or_path.count("/") > 1
        or os.sep != "/"
        and os.sep in name_or_path
        or (name_or_path.count("/") == 1 and Path(first).is_dir())
    )
    if looks_local and not (path / "config.json").is_file():
        state = "holds no config.json" if path.is_dir() else "does not exist: no such folder"
        raise ValueError(f"--model_name_or_path {name_or_path!r} {state}; pass a folder saved by `hf-tip build`.")
    try:  # by the saved model_type: a TIP-X, GDA, ... folder loads as itself, not as a Tip-Adapter
        model = AutoModelForImageClassification.from_pretrained(str(path) if looks_local else name_or_path)
    except OSError as error:
        if looks_local:
            raise
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(
            f"--model_name_or_path {name_or_path!r}: no such folder here, and no model loadable from the Hub under "
            f"that id ({first_line})"
        ) from error
    if not isinstance(model, ZeroShotForImageClassification):
        raise ValueError(
            f"--model_name_or_path {name_or_path!r} is a {model.config.model_type!r} model, not one saved by hf-tip."
        )
    return model.eval()


def run(args: EvaluateArguments, data: DataArguments, compute: ComputeArguments, *, argv: list[str]) -> int:
    if args.output_file is not None and os.path.exists(args.output_file):
        raise ValueError(f"--output_file {args.output_file!r} already exists; choose another path.")
    device = resolve_device(compute.device)  # a bad --device fails before any work
    model = load_model(args.model_name_or_path).to(device)
    dataset = load_dataset_from_args(data)
    require_split(dataset, args.split, SPLIT_FLAGS.get(args.split, "--split"))
    split = subsample(dataset[args.split], data.max_eval_samples, args.seed, name="--max_eval_samples")
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    label_map = check_dataset(
        {args.split: split}, labels, image_column=data.image_column, label_column=data.label_column
    )
    embeds, targets = encode_split(
        model,
        split,
        image_column=data.image_column,
        label_column=data.label_column,
        feature_cache_dir=args.feature_cache_dir,
        batch_size=compute.batch_size,
        show_progress=not compute.disable_tqdm,
        label_map=label_map,
    )
    scores = score(model, embeds, targets)
    result = {
        "model_name_or_path": args.model_name_or_path,
        "dataset_name": data.dataset_name or getattr(data, f"{args.split}_dir", None),
        "split": args.split,
        "num_samples": scores.num_samples,
        "accuracy": scores.adapter_accuracy,
        "zero_shot_accuracy": scores.zero_shot_accuracy,
        "model_type": model.config.model_type,
        **{k: getattr(model.config, k) for k in ("alpha", "beta", "gamma", "c") if hasattr(model.config, k)},
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.output_file is not None:
        Path(args.output_file).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output_file).write_text(text + "\n")
    return 0
