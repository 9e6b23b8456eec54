"""`hf-tip compare` / `hf_tip.compare_methods`: every method on the same few-shot samples and the same splits."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import CLASS_NAMES, make_images
from transformers import AutoModelForImageClassification

import hf_tip  # noqa: F401  (registers the Auto classes)
from hf_tip.data.datasets import sample_few_shot
from hf_tip.pipeline.compare import METHODS, CompareConfig, check_methods, shot_positions

REPO = Path(__file__).resolve().parents[1]
FAST = {  # small grids and few iterations: the mechanics, in seconds
    "linear-probe": {"c_grid": [0.1, 10.0], "max_iter": 30},
    "tip-adapter": {"search_step": [10, 5]},
    "tip-adapter-f": {"search_step": [10, 5]},
    "tip-x": {"tip_x_search_step": [4, 5, 3]},
}


def write_folders(root: Path, counts: dict[str, int]) -> dict[str, Path]:
    """`root/<split>/<class>/<i>.png` with `count` generated images per class."""
    out = {}
    for s, (split, count) in enumerate(counts.items()):
        for c, name in enumerate(CLASS_NAMES):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i, image in enumerate(make_images([c] * count, seed=100 + 10 * s + c)):
                image.save(folder / f"{i}.png")
        out[split] = root / split
    return out


def hf_tip_cli(*argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run(
        [sys.executable, "-m", "hf_tip.cli", "compare", *argv], capture_output=True, text=True, env=env, timeout=900
    )


@pytest.fixture(scope="module")
def compared(tmp_path_factory, tiny_clip_dir):
    """One real `hf-tip compare` run: every method, seeds 1 2, shots 1 4, models kept."""
    root = tmp_path_factory.mktemp("compare")
    folders = write_folders(root / "data", {"train": 6, "val": 3, "test": 4})
    out = root / "out"
    done = hf_tip_cli(
        "--model_name_or_path", str(tiny_clip_dir), "--train_dir", str(folders["train"]),
        "--validation_dir", str(folders["val"]), "--test_dir", str(folders["test"]), "--seeds", "1", "2",
        "--num_shots", "1", "4", "--augment_epochs", "2", "--num_train_epochs", "3", "--batch_size", "16",
        "--method_config", json.dumps(FAST), "--save_models", "--disable_tqdm", "--output_dir", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return out, folders, done


def test_table_has_every_method_and_shot_count(compared):
    out, _, done = compared
    results = json.loads((out / "results.json").read_text())
    runs = results["runs"]
    assert {(r["method"], r["num_shots"], r["seed"]) for r in runs} == {
        (m, k, s) for m in METHODS for k in (1, 4) for s in (1, 2)
    }
    assert len(runs) == 7 * 2 * 2
    table = (out / "results.md").read_text()
    assert "| method | 1-shot | 4-shot |" in table
    for label in ("Zero-shot CLIP", "Linear probe", "CLIP-Adapter", "Tip-Adapter", "Tip-Adapter-F", "TIP-X", "GDA"):
        assert f"| {label} |" in table
    assert results["num_test"] == 3 * 4 and results["num_validation"] == 3 * 3
    assert "--model_name_or_path" in results["command"]
    for run in runs:
        assert 0.0 <= run["test_accuracy"] <= 1.0 and 0.0 <= run["validation_accuracy"] <= 1.0
        assert run["fit_seconds"] >= 0
    by = {(r["method"], r["num_shots"], r["seed"]): r for r in runs}
    assert set(by["tip-adapter", 4, 1]["hyperparameters"]) >= {"alpha", "beta"}
    assert "gamma" in by["tip-x", 4, 1]["hyperparameters"]
    assert by["tip-adapter-f", 1, 2]["hyperparameters"]["num_train_epochs"] == 3
    assert by["clip-adapter", 1, 2]["hyperparameters"]["num_train_epochs"] == 3
    assert by["zero-shot", 1, 1]["test_accuracy"] == by["zero-shot", 4, 2]["test_accuracy"], "no few-shot data"


def test_mean_and_std_are_those_of_the_seeds(compared):
    out, _, _ = compared
    results = json.loads((out / "results.json").read_text())
    table = (out / "results.md").read_text()
    for method in METHODS:
        for shots in (1, 4):
            values = [
                100 * r["test_accuracy"] for r in results["runs"] if (r["method"], r["num_shots"]) == (method, shots)
            ]
            cell = results["summary"][method][str(shots)]
            assert cell["n"] == 2
            assert cell["mean"] == pytest.approx(statistics.fmean(values))
            assert cell["std"] == pytest.approx(statistics.stdev(values))
            assert f"{statistics.fmean(values):.2f} ± {statistics.stdev(values):.2f}" in table


def test_plot_is_a_png(compared):
    out, _, _ = compared
    data = (out / "accuracy_vs_shots.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    from PIL import Image

    with Image.open(out / "accuracy_vs_shots.png") as image:
        image.verify()


def test_saved_models_reload_with_identical_logits(compared, tiny_clip):
    """Every kept model reloads (Auto classes) with its model_type and the test accuracy the run reported."""
    out, folders, _ = compared
    from datasets import load_dataset

    test = load_dataset("imagefolder", data_files={"test": str(folders["test"] / "**")})["test"]
    runs = json.loads((out / "results.json").read_text())["runs"]
    for run in [r for r in runs if r["seed"] == 2 and r["num_shots"] == 4]:
        folder = Path(run["model_dir"])
        assert folder.is_dir() and folder.parent.name == run["method"]
        model = AutoModelForImageClassification.from_pretrained(folder).eval()
        again = AutoModelForImageClassification.from_pretrained(folder).eval()
        pixels = model.processor.image_processor(list(test["image"]), return_tensors="pt")["pixel_values"]
        with torch.no_grad():
            logits = model(pixel_values=pixels).logits
            assert torch.equal(logits, again(pixel_values=pixels).logits)
        accuracy = (logits.argmax(-1) == torch.tensor(test["label"])).float().mean().item()
        assert accuracy == pytest.approx(run["test_accuracy"]), run["method"]


def test_output_dir_is_not_overwritten(compared):
    out, folders, _ = compared
    done = hf_tip_cli(
        "--train_dir", str(folders["train"]), "--test_dir", str(folders["test"]), "--output_dir", str(out)
    )
    assert done.returncode != 0 and "--overwrite_output_dir" in done.stderr


def test_unknown_method_lists_the_valid_ones(tmp_path):
    with pytest.raises(ValueError, match="tip-adaptr") as error:
        check_methods(["tip-adapter", "tip-adaptr"])
    for name in METHODS:
        assert name in str(error.value)
    done = hf_tip_cli("--demo_data", "--methods", "gda", "clip_adapter", "--output_dir", str(tmp_path / "x"))
    assert done.returncode == 1 and "clip_adapter" in done.stderr and "clip-adapter" in done.stderr
    assert not (tmp_path / "x").exists()


def test_bad_settings_name_the_setting():
    with pytest.raises(ValueError, match="num_shots"):
        CompareConfig(num_shots=[0, 4])
    with pytest.raises(ValueError, match="seeds"):
        CompareConfig(seeds=[1, 1])
    with pytest.raises(ValueError, match="method_config"):
        CompareConfig(method_config={"tipx": {}})
    with pytest.raises(ValueError, match="Unknown template set"):
        CompareConfig(template_set="mnist")


def test_smaller_shot_sets_are_slices_of_the_largest():
    """The views of every K are sliced from those of the largest K: the K-shot sample is inside it, per seed."""
    labels = [c for c in range(4) for _ in range(9)]
    config = CompareConfig(num_shots=[1, 2, 8])
    for seed in (1, 2, 3):
        picked = sample_few_shot(labels, 8, seed)
        for shots in (1, 2, 8):
            positions = shot_positions(labels, picked, shots, seed, config, None)
            assert [picked[p] for p in positions] == sample_few_shot(labels, shots, seed)


def test_library_shares_the_encoding(tiny_clip, image_dataset, monkeypatch):
    """compare_methods encodes validation and test once and the views once per seed, whatever the methods/shots."""
    from datasets import DatasetDict

    import hf_tip.pipeline.compare as compare
    import hf_tip.pipeline.procedure as procedure

    calls = {"split": 0, "views": 0}
    encode_split, views = procedure.encode_split, procedure.iter_augmented_features

    def count_split(*args, **kwargs):
        calls["split"] += 1
        return encode_split(*args, **kwargs)

    def count_views(*args, **kwargs):
        calls["views"] += 1
        return views(*args, **kwargs)

    monkeypatch.setattr(procedure, "encode_split", count_split)
    monkeypatch.setattr(procedure, "iter_augmented_features", count_views)
    parts = image_dataset.train_test_split(test_size=0.5, seed=0, stratify_by_column="label")
    halves = parts["test"].train_test_split(test_size=0.5, seed=0, stratify_by_column="label")
    dataset = DatasetDict(train=parts["train"], validation=halves["train"], test=halves["test"])
    model, processor = tiny_clip
    result = compare.compare_methods(
        model, dataset, processor=processor, methods=["zero-shot", "tip-adapter", "gda"], seeds=[1, 2],
        num_shots=[1, 2], augment_epochs=2, method_config=FAST, show_progress=False,
    )  # fmt: skip
    assert calls == {"split": 2, "views": 2}
    assert len(result.runs) == 3 * 2 * 2
    tip = [r for r in result.runs if r.method == "tip-adapter"]
    assert all(set(r.hyperparameters) == {"alpha", "beta"} for r in tip)
