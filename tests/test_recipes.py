"""A trained method's recipe has one source (its registered `Method.recipe`, resolved once against the run's
arguments): `hf-tip finetune --method clip-adapter` (the README's command, verbatim) and `hf-tip compare` train
CLIP-Adapter the same way and record the same recipe; `finetune` without validation data names a flag it accepts."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from datasets import DatasetDict
from test_finetune import write_imagefolder

import hf_tip
from hf_tip.data.loading import load_image_dataset
from hf_tip.methods import get_method
from hf_tip.pipeline import compare
from hf_tip.training.args import RECORDED_RECIPE, FinetuneConfig

REPO = Path(__file__).resolve().parents[1]
# CLIP-Adapter's reference (gaopengcuhk/CLIP-Adapter on CoOp's Dassl: configs/trainers/CoOp/*.yaml), written out
# here independently of the package: SGD momentum 0.9, lr 2e-3, wd 5e-4, batch 32, 200 epochs, 1 warm-up epoch at
# 1e-5, cosine stepped per epoch; 10 augmented views per image (compare's bank).
REFERENCE = {
    "per_device_train_batch_size": 32,
    "num_augmented_views": 10,
    "num_train_epochs": 200,
    "learning_rate": 2e-3,
    "optimizer": "sgd",
    "weight_decay": 5e-4,
    "momentum": 0.9,
    "warmup_epochs": 1,
    "warmup_learning_rate": 1e-5,
    "lr_scheduler_unit": "epoch",
}


def readme_command(prefix: str) -> list[str]:
    """The README's line that starts with `prefix`, split as a shell would."""
    lines = [line for line in (REPO / "README.md").read_text().splitlines() if line.startswith(prefix)]
    assert len(lines) == 1, lines
    return shlex.split(lines[0])


def hf_tip_cli(cwd: Path, argv: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "HF_HOME": str(cwd / "hf_home"), "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1",
           "CUDA_VISIBLE_DEVICES": ""}  # fmt: skip
    env.pop("HF_TIP_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "hf_tip.cli", *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip


@pytest.fixture(scope="module")
def readme_run(tmp_path_factory, tiny_clip_dir):
    """The README's `hf-tip finetune --method clip-adapter ...` as written, in a folder holding `data/train` (16 per
    class: the default 16 shots) and `data/val`, with the tiny CLIP folder in place of the Hub id."""
    cwd = tmp_path_factory.mktemp("readme-clip-adapter")
    write_imagefolder(cwd / "data" / "train", 16, 1)
    write_imagefolder(cwd / "data" / "val", 3, 2)
    argv = readme_command("hf-tip finetune --method clip-adapter")
    assert argv[:2] == ["hf-tip", "finetune"] and "openai/clip-vit-base-patch16" in argv
    argv = [str(tiny_clip_dir) if a == "openai/clip-vit-base-patch16" else a for a in argv[1:]]
    done = hf_tip_cli(cwd, argv)
    return cwd, done


def test_readme_clip_adapter_command_runs_verbatim(readme_run):
    """No traceback (`'ClipAdapterConfig' object has no attribute 'num_shots'`): 16 shots by default, and the
    reference's recipe (batch 32 on a bank of 10 views, SGD, 200 epochs, warm-up, cosine per epoch) recorded."""
    cwd, done = readme_run
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    results = json.loads((cwd / "clip-adapter" / "all_results.json").read_text())
    assert results["recipe"] == {**REFERENCE, "adam_epsilon": 1e-4, "online_augmentation": False}
    assert results["num_shots"] == 16 and results["num_examples"] == 16 * 3
    assert results["train_batch_size"] == 32 and results["augmentation"] == "bank of 10 views"
    assert len(results["history"]) == 200
    saved = hf_tip.ClipAdapterForImageClassification.from_pretrained(cwd / "clip-adapter")
    assert saved.config.model_type == "clip-adapter"


def test_finetune_and_compare_record_the_same_clip_adapter_recipe(readme_run, tiny_clip):
    """`compare` resolves CLIP-Adapter's recipe as `finetune` does: the same batch, views, optimizer, schedule,
    epochs; and trains on a bank of exactly that many views."""
    cwd, done = readme_run
    assert done.returncode == 0, done.stderr[-3000:]
    finetuned = json.loads((cwd / "clip-adapter" / "all_results.json").read_text())["recipe"]
    data = load_image_dataset(train_dir=cwd / "data" / "train", validation_dir=cwd / "data" / "val")
    dataset = DatasetDict(train=data["train"], validation=data["validation"], test=data["validation"])
    model, processor = tiny_clip
    banks = []
    real_train_head = compare.train_head

    def spy(model, bank, *args, **kwargs):
        banks.append(bank.shape[0])
        return real_train_head(model, bank, *args, **kwargs)

    compare.train_head = spy
    try:
        result = compare.compare_methods(
            model, dataset, processor=processor, methods=["clip-adapter"], seeds=[1], num_shots=[2],
            augment_epochs=1, show_progress=False,
        )  # fmt: skip
    finally:
        compare.train_head = real_train_head
    (run,) = result.runs
    assert run.recipe == finetuned
    assert {k: run.recipe[k] for k in REFERENCE} == REFERENCE
    assert banks == [REFERENCE["num_augmented_views"]]
    assert result.to_dict()["runs"][0]["recipe"] == finetuned  # compare's results.json records it too


def test_the_registry_is_the_recipe_source_and_flags_override_it(tiny_clip):
    """`FinetuneConfig.resolve` reads the registered recipe; a flag wins; the record lists every recipe field."""
    model = hf_tip.ClipAdapterForImageClassification.from_clip(tiny_clip[0], ["a", "b"], processor=tiny_clip[1])
    resolved = FinetuneConfig().resolve(model)
    assert {k: getattr(resolved, k) for k in REFERENCE} == {**REFERENCE, **get_method("clip-adapter").recipe}
    assert set(resolved.recipe()) == set(RECORDED_RECIPE)
    assert FinetuneConfig(per_device_train_batch_size=8).resolve(model).per_device_train_batch_size == 8
    tip = hf_tip.TipAdapterForImageClassification.from_clip(tiny_clip[0], ["a", "b"], processor=tiny_clip[1])
    tip_recipe = FinetuneConfig().resolve(tip)
    assert (tip_recipe.per_device_train_batch_size, tip_recipe.optimizer, tip_recipe.num_train_epochs) == (
        256, "adamw", 20)  # fmt: skip
    assert tip_recipe.num_shots == tip.config.num_shots


def test_finetune_without_validation_names_a_flag_it_accepts(tmp_path, tiny_clip_dir):
    """The error names `--train_val_split`, and `finetune` accepts it (a stratified split carved from train)."""
    train = write_imagefolder(tmp_path / "train", 6, 1)
    base = [
        "finetune",
        "--model_name_or_path",
        str(tiny_clip_dir),
        "--train_dir",
        str(train),
        "--num_shots",
        "2",
        "--num_train_epochs",
        "1",
        "--augment_epochs",
        "1",
        "--num_augmented_views",
        "1",
        "--alpha",
        "1.0",
    ]
    refused = hf_tip_cli(tmp_path, [*base, "--output_dir", str(tmp_path / "a")])
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "--train_val_split" in refused.stderr and not (tmp_path / "a").exists()
    bad = hf_tip_cli(tmp_path, [*base, "--output_dir", str(tmp_path / "b"), "--train_val_split", "1.5"])
    assert bad.returncode == 1 and "--train_val_split must be a fraction in (0, 1)" in bad.stderr
    done = hf_tip_cli(tmp_path, [*base, "--output_dir", str(tmp_path / "c"), "--train_val_split", "0.5"])
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "c" / "all_results.json").read_text())
    assert results["num_examples"] == 2 * 3


def test_every_command_subsamples_evaluation_with_one_seed(image_dataset, tiny_clip, monkeypatch):
    """build (`fit_training_free`), compare and evaluate keep the same `--max_eval_samples` rows: one seed,
    whatever the run's few-shot seed."""
    from hf_tip.cli import evaluate as evaluate_cli
    from hf_tip.pipeline import evaluation, procedure

    seen = []
    real = procedure.subsample

    def spy(split, max_samples, seed=evaluation.EVAL_SUBSAMPLE_SEED, name="max_samples"):
        seen.append(seed)
        return real(split, max_samples, seed, name)

    monkeypatch.setattr(procedure, "subsample", spy)
    parts = image_dataset.train_test_split(test_size=0.5, seed=0, stratify_by_column="label")
    dataset = DatasetDict(train=parts["train"], validation=parts["test"], test=parts["test"])
    model, processor = tiny_clip
    adapter = hf_tip.TipAdapterForImageClassification.from_clip(
        model, image_dataset.features["label"].names, processor=processor, search_step=[4, 3]
    )
    procedure.fit_training_free(adapter, dataset, num_shots=1, seed=3, augment_epochs=1, max_eval_samples=2,
                                show_progress=False)  # fmt: skip
    compare.compare_methods(model, dataset, processor=processor, methods=["zero-shot"], seeds=[3], num_shots=[1],
                            augment_epochs=1, max_eval_samples=2, show_progress=False)  # fmt: skip
    assert seen == [evaluation.EVAL_SUBSAMPLE_SEED] * 4
    assert evaluate_cli.EvaluateArguments(model_name_or_path="m").seed == evaluation.EVAL_SUBSAMPLE_SEED


def test_build_records_the_fit_it_resolved(tmp_path, tiny_clip_dir):
    """`hf-tip build`'s results.json records its resolved recipe under the same key as finetune and compare."""
    train = write_imagefolder(tmp_path / "train", 4, 1)
    val = write_imagefolder(tmp_path / "val", 2, 2)
    out = tmp_path / "built"
    done = hf_tip_cli(tmp_path, ["build", "--model_name_or_path", str(tiny_clip_dir), "--train_dir", str(train),
                                 "--validation_dir", str(val), "--num_shots", "2", "--augment_epochs", "2",
                                 "--search_step", "4", "3", "--seed", "5", "--output_dir", str(out)])  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["recipe"]["num_shots"] == 2 and results["recipe"]["augment_epochs"] == 2
    assert results["recipe"]["seed"] == 5 and results["recipe"]["search_step"] == [4, 3]


def test_resolve_reads_the_registered_recipe_not_a_copy(tiny_clip, monkeypatch):
    """A registered recipe changed in the registry is what `finetune` and `compare` resolve (no second table); a
    model no registered method trains falls back to its config's fields and Tip-Adapter-F's defaults."""
    import dataclasses

    from hf_tip import methods

    model = hf_tip.ClipAdapterForImageClassification.from_clip(tiny_clip[0], ["a", "b"], processor=tiny_clip[1])
    changed = dataclasses.replace(get_method("clip-adapter"), recipe={**get_method("clip-adapter").recipe,
                                                                      "num_augmented_views": 3})  # fmt: skip
    monkeypatch.setattr(methods, "methods_for_model_type", lambda model_type: [changed])
    assert FinetuneConfig().resolve(model).num_augmented_views == 3
    config = compare.CompareConfig(methods=["clip-adapter"], augment_epochs=1)
    assert compare.training_recipe(model, 1, config, None).num_augmented_views == 3
    monkeypatch.setattr(methods, "methods_for_model_type", lambda model_type: [])
    fallback = FinetuneConfig().resolve(model)
    assert fallback.per_device_train_batch_size == 32  # the model config's `batch_size`
    assert fallback.num_augmented_views is None and fallback.adam_epsilon == 1e-4
