"""examples/reproduce_paper.py end to end on a tiny CLIP and generated imagefolder datasets (no Hub)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
from conftest import make_images

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "reproduce_paper.py"


@pytest.fixture(scope="module")
def reproduce():
    spec = importlib.util.spec_from_file_location("reproduce_paper", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the script executes
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def write_imagefolder(root: Path, split_counts: dict[str, int], classes: list[str], seed: int = 0) -> Path:
    """`root/<split>/<class>/<i>.png`, `count` generated images per class (colour = class index mod 3)."""
    for s, (split, count) in enumerate(split_counts.items()):
        for c, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i, image in enumerate(make_images([c] * count, seed=seed + 10 * s + c)):
                image.save(folder / f"{i}.png")
    return root


def common_args(tiny_clip_dir, output_dir) -> list[str]:
    return [
        "--model_name_or_path", str(tiny_clip_dir), "--output_dir", str(output_dir), "--augment_epochs", "2",
        "--search_step", "10", "5", "--encode_batch_size", "16",
    ]  # fmt: skip


def test_reproduce_end_to_end(reproduce, tiny_clip_dir, tmp_path):
    """EuroSAT's preset (class renames, template, epochs overridden) on a local folder: every method, a table, a
    JSON, the feature cache, Tip-Adapter-F's report of the training-free model agreeing with fit_training_free's, and
    a re-run that reuses the finished runs."""
    data = write_imagefolder(
        tmp_path / "eurosat", {"train": 5, "val": 3, "test": 4}, ["AnnualCrop", "Forest", "SeaLake"]
    )
    out = tmp_path / "out"
    argv = [*common_args(tiny_clip_dir, out), "--datasets", "eurosat", "--dataset_dir", f"eurosat={data}"]
    argv += ["--shots", "1", "2", "--seeds", "1", "--num_train_epochs", "2"]
    results = reproduce.main(argv)

    runs = results["runs"]
    assert [(r["dataset"], r["shots"], r["seed"]) for r in runs] == [("eurosat", 1, 1), ("eurosat", 2, 1)]
    for run in runs:
        for method in ("zero_shot", "tip_adapter", "tip_adapter_f"):
            assert 0.0 <= run[method] <= 1.0
        free, tuned = run["training_free"], run["finetune"]
        assert free["eval_split"] == "test" and free["test"]["num_samples"] == 3 * 4
        assert free["cache_size"] == 3 * run["shots"] and free["augment_epochs"] == 2
        assert free["search_step"] == [10, 5]
        # finetune reports the same training-free model (keys, alpha, beta) on the same test split
        assert tuned["test"]["tip_adapter_accuracy"] == pytest.approx(run["tip_adapter"])
        assert tuned["test"]["zero_shot_accuracy"] == pytest.approx(run["zero_shot"])
        assert tuned["num_train_epochs"] == 2 and tuned["eval_split"] == "test"
    assert runs[0]["zero_shot"] == runs[1]["zero_shot"], "zero-shot does not depend on the shots"

    stored = json.loads((out / "results.json").read_text())
    assert stored["summary"]["eurosat"]["tip_adapter_f"]["2"]["n"] == 1
    assert stored["summary"]["eurosat"]["tip_adapter"]["1"]["mean"] == pytest.approx(100 * runs[0]["tip_adapter"])
    table = (out / "results.md").read_text()
    for text in ("| method | 1-shot | 2-shot |", "| Tip-Adapter-F |", "### 2-shot summary", "37.52 / 70.54 / 84.54"):
        assert text in table
    features = sorted((out / "features").glob("*.safetensors"))
    assert features, "validation/test features are cached"

    # a re-run reads the finished runs and the feature cache: nothing is recomputed or re-encoded
    run_files = sorted((out / "runs").rglob("*.json"))
    stamps = {p: p.stat().st_mtime_ns for p in [*run_files, *features]}
    again = reproduce.main(argv)
    assert again["runs"] == json.loads(json.dumps(runs))
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert sorted((out / "features").glob("*.safetensors")) == features


def test_registry_entry_with_carved_splits(reproduce, tiny_clip_dir, tmp_path, monkeypatch):
    """A dataset added to the registry (a local folder with a train split only): validation and test are carved per
    class with the fixed split seed, a dropped class disappears, and two seeds give mean ± std."""
    classes = ["Red", "Green", "Blue", "faces_easy"]
    data = write_imagefolder(tmp_path / "toy", {"train": 10}, classes)
    source = reproduce.DatasetSource(local_dir=str(data), preset="dtd", drop_classes=("Faces_Easy",), note="toy")
    monkeypatch.setitem(reproduce.DATASETS, "toy", source)

    dataset = reproduce.load_protocol_splits("toy", source, reproduce.parse_args(["--output_dir", str(tmp_path)]))
    assert dataset["train"].features["label"].names == ["Blue", "Green", "Red"]  # imagefolder sorts
    assert {k: len(v) for k, v in dataset.items()} == {"train": 15, "validation": 6, "test": 9}  # 5/2/3 per class

    out = tmp_path / "out"
    argv = [*common_args(tiny_clip_dir, out), "--datasets", "toy", "--shots", "2", "--seeds", "1", "2"]
    results = reproduce.main([*argv, "--skip_finetune"])
    assert all("tip_adapter_f" not in run for run in results["runs"])
    assert [run["seed"] for run in results["runs"]] == [1, 2]
    cell = results["summary"]["toy"]["tip_adapter"][2]
    assert cell["n"] == 2 and cell["std"] >= 0
    assert " ± " in (out / "results.md").read_text() and "dtd" not in results["summary"]


def test_carve_is_stratified_disjoint_and_fixed(reproduce):
    from datasets import Dataset

    labels = [c for c in range(3) for _ in range(10)] + [3]  # class 3 has one example
    split = Dataset.from_dict({"label": labels, "index": list(range(len(labels)))})
    parts = reproduce.carve(split, {"validation": 0.2, "test": 0.3}, "label")
    again = reproduce.carve(split, {"validation": 0.2, "test": 0.3}, "label")
    indices = {name: list(part["index"]) for name, part in parts.items()}
    assert indices == {name: list(part["index"]) for name, part in again.items()}
    assert sorted(sum(indices.values(), [])) == list(range(len(labels))), "disjoint and complete"
    for c in range(3):
        assert [list(part["label"]).count(c) for part in parts.values()] == [2, 3, 5]
    assert list(parts["validation"]["label"]).count(3) == 1  # a tiny class still gets its one validation example


def test_unknown_dataset_and_missing_source(reproduce, tmp_path):
    with pytest.raises(SystemExit):
        reproduce.parse_args(["--datasets", "mnist", "--output_dir", str(tmp_path)])
    args = reproduce.parse_args(["--datasets", "ucf101", "--output_dir", str(tmp_path)])
    with pytest.raises(ValueError, match="--dataset_dir ucf101=DIR"):
        reproduce.load_protocol_splits("ucf101", reproduce.DATASETS["ucf101"], args)
