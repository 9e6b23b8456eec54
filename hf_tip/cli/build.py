"""`hf-tip build`: a training-free Tip-Adapter from a dataset, saved as a `save_pretrained` folder.

Samples `--num_shots` images per class from the train split, builds the augmented cache, searches alpha/beta on the
validation split, scores zero-shot CLIP and Tip-Adapter on the test split, then writes the model folder (config,
`model.safetensors`, processor, model card) and `results.json`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from ..data.datasets import dataset_class_names, declared_mapping
from ..data.templates import PRESETS, get_preset, resolve_templates
from ..hub.redact import redact_command
from ..pipeline.procedure import create_adapter, fit_training_free, resolve_class_names
from .arguments import (
    DEFAULT_BACKBONE,
    AdapterArguments,
    ComputeArguments,
    OutputArguments,
    TrainDataArguments,
    load_dataset_from_args,
)
from .common import check_output_dir, format_results, push, resolve_device, saved_message, write_results

HELP = "Build a training-free Tip-Adapter from a dataset: sample, cache, search alpha/beta, evaluate, save."


@dataclass
class ModelArguments:
    """The backbone and the paper's per-dataset settings."""

    _argument_group_name: ClassVar[str] = "model"

    model_name_or_path: str = field(
        default=DEFAULT_BACKBONE,
        metadata={"help": "The CLIP backbone: a Hub id or a local folder with a CLIP checkpoint."},
    )
    template_set: str | None = field(
        default=None,
        metadata={
            "help": "The paper's settings for a dataset (templates, class renames, initial alpha/beta, search grid, "
            f"augment epochs): one of {', '.join(sorted(PRESETS))}. --templates overrides its templates."
        },
    )


ARGUMENTS = (ModelArguments, TrainDataArguments, AdapterArguments, ComputeArguments, OutputArguments)


def run(
    model_args: ModelArguments,
    data: TrainDataArguments,
    adapter: AdapterArguments,
    compute: ComputeArguments,
    output: OutputArguments,
    *,
    argv: list[str],
) -> int:
    output_dir = check_output_dir(output.output_dir, output.overwrite_output_dir)  # before any work
    device = resolve_device(compute.device)
    preset = get_preset(model_args.template_set) if model_args.template_set else None
    dataset = load_dataset_from_args(data)
    labels, prompts = resolve_class_names(dataset, data.label_column, adapter.class_names, preset)
    config_kwargs = preset.config_kwargs() if preset is not None else {}
    config_kwargs["templates"] = resolve_templates(adapter.templates, model_args.template_set)
    model = create_adapter(model_args.model_name_or_path, labels, prompt_names=prompts, **config_kwargs)
    model.to(device)
    result = fit_training_free(
        model,
        dataset,
        num_shots=adapter.num_shots,
        seed=adapter.seed,
        augment_epochs=adapter.augment_epochs,
        image_column=data.image_column,
        label_column=data.label_column,
        feature_cache_dir=adapter.feature_cache_dir,
        search_scale=adapter.search_scale,
        search_step=adapter.search_step,
        allow_fewer_shots=adapter.allow_fewer_shots,
        max_eval_samples=data.max_eval_samples,
        batch_size=compute.batch_size,
        show_progress=not compute.disable_tqdm,
        dataset_name=data.dataset_name,  # None for local folders (the model card names Hub datasets only)
        command=redact_command("hf-tip", argv),
        class_mapping=declared_mapping(dataset_class_names(dataset.get("train"), data.label_column), labels),
    )
    results = {"backbone": model_args.model_name_or_path, "template_set": model_args.template_set, **result.to_dict()}
    if data.dataset_name is None:
        results["data_dirs"] = {"train": data.train_dir, "validation": data.validation_dir, "test": data.test_dir}
    if data.train_val_split is not None:
        results["train_val_split"] = data.train_val_split
    results["templates"] = model.config.templates
    model.save_pretrained(output_dir)
    write_results(output_dir, results)
    print(format_results(result))
    print(saved_message(output_dir))
    if output.push_to_hub:
        print(f"Pushed to the Hub: {push(output_dir, output.hub_model_id, output.hub_token)}")
    return 0
