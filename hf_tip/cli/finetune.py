"""`hf-tip finetune`: fine-tune a Tip-Adapter's cache keys (Tip-Adapter-F), or a CLIP-Adapter (`--method
clip-adapter`), with Accelerate, single or multi-process.

    hf-tip finetune --model_name_or_path openai/clip-vit-base-patch16 --dataset_name blanchon/EuroSAT_RGB \
        --num_shots 16 --num_train_epochs 100 --output_dir tip-adapter-f-eurosat
    hf-tip finetune --method clip-adapter --model_name_or_path openai/clip-vit-base-patch16 ...  # its SGD recipe
    accelerate launch --multi_gpu --num_processes 2 -m hf_tip.cli finetune ...   # N processes (gloo on CPU)
    hf-tip finetune run.json                                                       # or run.yaml: the same flags

The flags are the fields of [`FinetuneScriptArguments`] (model, data, hub) and [`~hf_tip.training.args.FinetuneConfig`]
(the run), read by `transformers.HfArgumentParser`. A user error (bad data, flag or checkpoint) prints one line and
exits with status 1 on every process; `HF_TIP_DEBUG=1` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal

import torch
from transformers import HfArgumentParser

from ..hub.redact import redact_command
from ..training.args import FinetuneConfig
from .arguments import check_fraction

logger = logging.getLogger(__name__)
PROGRAM = "hf-tip finetune"
DESCRIPTION = "Fine-tune a Tip-Adapter's cache keys (Tip-Adapter-F) or a CLIP-Adapter with Accelerate."
# `--method` -> the model_type it trains and the name its runs go by
METHODS = {"tip-adapter-f": ("tip-adapter", "Tip-Adapter-F"), "clip-adapter": ("clip-adapter", "CLIP-Adapter")}
# What a user can get wrong (a flag, a file, a folder, a dataset, a checkpoint): one message, no traceback.
USER_ERRORS = (ValueError, OSError)
# A non-main process whose error the main process meets too (found before any collective, identically everywhere)
# prints nothing and waits for the launcher to stop it once the main process has printed it (at most this long).
SAME_ERROR_WAIT_S = 120.0


@dataclass
class FinetuneScriptArguments:
    """The flags of `hf-tip finetune` besides the run's [`FinetuneConfig`]: the model, the data and the Hub."""

    model_name_or_path: str = field(
        metadata={"help": "A saved model of the method (folder or Hub id), or a CLIP backbone to build it from."}
    )
    method: Literal["tip-adapter-f", "clip-adapter"] = field(
        default="tip-adapter-f",
        metadata={"help": "What trains: tip-adapter-f (a Tip-Adapter's cache keys) or clip-adapter (a residual MLP "
                  "on the image features, with CLIP-Adapter's recipe from its config: SGD, warm-up, cosine per epoch)."},
    )  # fmt: skip
    dataset_config_name: str | None = field(default=None, metadata={"help": "The dataset's configuration name."})
    train_dir: str | None = field(default=None, metadata={"help": "An imagefolder (one sub-folder per class)."})
    validation_dir: str | None = field(default=None, metadata={"help": "An imagefolder for validation."})
    test_dir: str | None = field(default=None, metadata={"help": "An imagefolder for the final test (read once)."})
    train_val_split: float | None = field(
        default=None,
        metadata={"help": "Without a validation split, carve this fraction of each class of the train split into one "
                  "(stratified and seeded, as `hf-tip build --train_val_split`), e.g. 0.2.", "metavar": "FRACTION"},
    )  # fmt: skip
    template_set: str | None = field(
        default=None,
        metadata={"help": "The paper's settings for one of its datasets (eurosat, imagenet, ...): names, templates, "
                  "initial alpha/beta, grid, epochs, learning rate."},
    )  # fmt: skip
    templates: list[str] | None = field(
        default=None, metadata={"help": "Prompt templates with `{}` when building from a CLIP backbone."}
    )
    search_scale: list[float] | None = field(default=None, metadata={"help": "BETA_MAX ALPHA_MAX: the grid's ends."})
    search_step: list[int] | None = field(default=None, metadata={"help": "N_BETA N_ALPHA: the grid's sizes."})
    push_to_hub: bool = field(default=False, metadata={"help": "Push the fine-tuned model to the Hub."})
    hub_model_id: str | None = field(default=None, metadata={"help": "The Hub repository (default: output folder)."})
    hub_token: str | None = field(default=None, metadata={"help": "A Hub token (default: the logged-in one)."})
    with_tracking: bool = field(default=False, metadata={"help": "Log per-epoch metrics with Accelerate trackers."})
    report_to: str = field(default="all", metadata={"help": 'Trackers ("all": those installed; "tensorboard", ...).'})
    # test-only: SIGKILL every process right after step N (and its checkpoint), to test resuming after a crash
    kill_after_steps: int | None = field(default=None, metadata={"help": argparse.SUPPRESS})


def build_parser() -> HfArgumentParser:
    return HfArgumentParser((FinetuneScriptArguments, FinetuneConfig), prog=PROGRAM, description=DESCRIPTION)


def parse_args(argv: list[str]) -> tuple[FinetuneScriptArguments, FinetuneConfig]:
    """The two dataclasses from flags, or from a JSON / YAML file given as the only argument; checked."""
    parser = build_parser()
    if len(argv) == 1 and argv[0].endswith(".json"):
        script, config = parser.parse_json_file(argv[0])
    elif len(argv) == 1 and argv[0].endswith((".yaml", ".yml")):
        script, config = parser.parse_yaml_file(argv[0])
    else:
        script, config = parser.parse_args_into_dataclasses(argv)
    if config.dataset_name is None and script.train_dir is None:
        raise ValueError("Pass `--dataset_name` or `--train_dir` / `--validation_dir`.")
    if not config.output_dir:
        raise ValueError("Pass `--output_dir`: where the model, its results and checkpoints go.")
    if script.train_val_split is not None:
        check_fraction(script.train_val_split, "--train_val_split")
    for name in ("search_scale", "search_step"):
        value = getattr(script, name)
        if value is not None and len(value) != 2:
            raise ValueError(
                f"`--{name}` takes 2 values ({'BETA' if name == 'search_scale' else 'N_BETA'} ...), got {value}."
            )
    return script, config


def with_preset(config: FinetuneConfig, preset, method: str = "tip-adapter-f") -> FinetuneConfig:
    """The template set's Tip-Adapter-F epochs, learning rate and initial α/β (the paper trains at them) where no flag
    set them (CLIP-Adapter keeps its own recipe)."""
    if preset is None or method != "tip-adapter-f":
        return config
    values = {"num_train_epochs": preset.train_epochs, "learning_rate": preset.learning_rate,
              "alpha": preset.init_alpha, "beta": preset.init_beta}  # fmt: skip
    return replace(config, **{k: v for k, v in values.items() if getattr(config, k) is None})


def load_model(script: FinetuneScriptArguments, config: FinetuneConfig, dataset, preset):
    """A saved model of the method as is, or one built over a CLIP backbone (a Tip-Adapter's cache is built by
    `finetune`); and the model's name of each dataset label."""
    from transformers import AutoConfig

    from .. import TipAdapterConfig, TipAdapterForImageClassification
    from ..pipeline.procedure import create_adapter, resolve_class_names

    labels, prompts = resolve_class_names(dataset, config.label_column, config.class_names, preset)
    overrides = {"search_scale": script.search_scale, "search_step": script.search_step, "templates": script.templates}
    overrides = {k: list(v) for k, v in overrides.items() if v}
    model_type = AutoConfig.from_pretrained(script.model_name_or_path).model_type
    wanted, name = METHODS[script.method]
    if model_type != wanted and model_type in {m for m, _ in METHODS.values()}:
        raise ValueError(
            f"{script.model_name_or_path!r} is a saved {model_type} model, but `--method {script.method}` trains a "
            f"{name}: pass `--method` of that model, or a CLIP backbone to build a new {name} from."
        )
    if script.method == "clip-adapter":
        return _clip_adapter(script, model_type, labels, prompts, preset), labels
    if model_type == TipAdapterConfig.model_type:
        model = TipAdapterForImageClassification.from_pretrained(script.model_name_or_path)
        for name in ("search_scale", "search_step"):
            setattr(model.config, name, overrides.get(name, getattr(model.config, name)))
        return model, labels
    kwargs = {**(preset.config_kwargs() if preset is not None else {}), **overrides}
    return create_adapter(script.model_name_or_path, labels, prompt_names=prompts, **kwargs), labels


def _clip_adapter(script: FinetuneScriptArguments, model_type: str, labels, prompts, preset):
    """A saved CLIP-Adapter as is, or a new one (seeded initial adapter) over a CLIP backbone."""
    from .. import ClipAdapterConfig, ClipAdapterForImageClassification

    if model_type == ClipAdapterConfig.model_type:
        return ClipAdapterForImageClassification.from_pretrained(script.model_name_or_path)
    templates = script.templates or (list(preset.templates) if preset is not None else None)
    model = ClipAdapterForImageClassification.from_clip(script.model_name_or_path, labels, templates=templates)
    if list(prompts) != list(labels):
        model.set_class_prompts([c.replace("_", " ") for c in prompts])
    return model


def _tracker_params(script: FinetuneScriptArguments, config: FinetuneConfig) -> dict:
    """The run's hyper-parameters for trackers: scalars only, never the Hub token."""
    values = {**asdict(script), **asdict(config)}
    values.pop("hub_token", None)
    return {k: v for k, v in values.items() if isinstance(v, (int, float, str, bool))}


def train(script: FinetuneScriptArguments, config: FinetuneConfig) -> dict:
    """Load the data and the model, fine-tune, save, and push when asked; return the results."""
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration, set_seed

    from ..data.datasets import dataset_class_names, declared_mapping
    from ..data.loading import load_image_dataset, require_split
    from ..data.templates import get_preset
    from ..hub.push import push_model
    from ..training.trainer import check_output_dir, finetune

    with _same_on_every_process():
        preset = get_preset(script.template_set) if script.template_set else None
        config = with_preset(config, preset, script.method)
        check_output_dir(config)  # before loading anything
    # Without CUDA, `cpu=True` turns `accelerate launch --multi_gpu --num_processes N` into N gloo CPU processes.
    logs = ProjectConfiguration(config.output_dir, os.path.join(config.output_dir, "logs"))
    tracking = {"log_with": script.report_to, "project_config": logs} if script.with_tracking else {}
    accelerator = Accelerator(cpu=not torch.cuda.is_available(), **tracking)
    level = logging.INFO if accelerator.is_main_process else logging.ERROR
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=level)
    set_seed(1 if config.seed is None else config.seed)
    with _same_on_every_process():  # the data and the model: every process reads the same files
        with accelerator.main_process_first():
            dataset = load_image_dataset(
                config.dataset_name, script.dataset_config_name, script.train_dir, script.validation_dir,
                script.test_dir, image_column=config.image_column, label_column=config.label_column,
                train_val_split=script.train_val_split,
            )  # fmt: skip
        require_split(dataset, "train", "--train_dir")
        require_split(dataset, "validation", "--validation_dir")
        model, labels = load_model(script, config, dataset, preset)
        # renamed (--class_names, --template_set): label i is the model's class i; the same classes match by name
        renames = declared_mapping(dataset_class_names(dataset["train"], config.label_column), labels)
        if renames is not None:
            config = replace(config, class_names=renames)
    if script.with_tracking:
        accelerator.init_trackers(script.method.replace("-", "_"), _tracker_params(script, config))
    results = finetune(model, dataset, config, accelerator, on_step=_kill_hook(script.kill_after_steps))
    logger.info(f"best epoch {results['best_epoch']}; {results['eval_split']} accuracy {results['eval_accuracy']:.4f}")
    if script.push_to_hub and accelerator.is_main_process:
        repo_id = script.hub_model_id or Path(config.output_dir).absolute().name
        message = f"{METHODS[script.method][1]}: end of training"
        push_model(model, repo_id, token=script.hub_token, commit_message=message)
    accelerator.wait_for_everyone()
    accelerator.end_training()  # also tears down the process group (gloo can abort at exit otherwise)
    return results


@contextlib.contextmanager
def _same_on_every_process():
    """Mark a user error raised inside as met identically by every process (see `report_user_error`)."""
    try:
        yield
    except USER_ERRORS as error:
        error.same_on_every_process = True
        raise


def _kill_hook(kill_after_steps: int | None):
    if kill_after_steps is None:
        return None

    def on_step(completed_steps: int) -> None:
        if completed_steps == kill_after_steps:
            os.kill(os.getpid(), signal.SIGKILL)

    return on_step


def report_user_error(error: BaseException) -> int:
    """Print `error` as one line and return the exit status 1. An error every process meets (marked
    `same_on_every_process`: found before any collective) is printed by the main process only; the others wait
    silently to be stopped by the launcher (whose own exit is then non-zero), so the user reads one message. An error
    of one process alone (a bad image in its shard) is printed by that process, naming it."""
    rank = int(os.environ.get("RANK", "0"))
    if rank != 0 and getattr(error, "same_on_every_process", False):
        time.sleep(SAME_ERROR_WAIT_S)  # the launcher stops this process once the main one has printed and exited
        return 1
    prefix = f"{PROGRAM}: error" + (f" (process {rank})" if rank else "")
    print(f"{prefix}: {error}", file=sys.stderr, flush=True)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    return 1


def main(argv: list[str] | None = None, program: str = PROGRAM) -> int:
    """Parse, train; a user error becomes one line on stderr and the exit status 1 (2 for a malformed command)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        try:
            script, config = parse_args(argv)
            config = replace(config, command=redact_command(program, argv))
        except USER_ERRORS as error:
            error.same_on_every_process = True
            raise
        train(script, config)
    except USER_ERRORS as error:
        if os.environ.get("HF_TIP_DEBUG"):
            raise
        return report_user_error(error)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
