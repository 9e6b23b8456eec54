"""examples/reproduce_paper.py end to end on a tiny CLIP and generated imagefolder datasets (no Hub)."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import runpy
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
    """EuroSAT's preset (class renames, template, epochs overridden) on a local folder: the methods asked, a table,
    a JSON, the feature cache, every method on the same splits, and a re-run that reuses the finished dataset."""
    data = write_imagefolder(
        tmp_path / "eurosat", {"train": 5, "val": 3, "test": 4}, ["AnnualCrop", "Forest", "SeaLake"]
    )
    out = tmp_path / "out"
    argv = [*common_args(tiny_clip_dir, out), "--datasets", "eurosat", "--dataset_dir", f"eurosat={data}"]
    argv += ["--shots", "1", "2", "--seeds", "1", "--num_train_epochs", "2"]
    argv += ["--methods", "zero-shot", "tip-adapter", "tip-adapter-f", "gda"]
    results = reproduce.main(argv)

    runs = results["runs"]
    methods = ["zero-shot", "tip-adapter", "tip-adapter-f", "gda"]
    assert [(r["dataset"], r["shots"], r["seed"], r["method"]) for r in runs] == [
        ("eurosat", k, 1, m) for k in (1, 2) for m in methods
    ]
    by = {(r["method"], r["shots"]): r for r in runs}
    for run in runs:
        assert 0.0 <= run["test_accuracy"] <= 1.0 and 0.0 <= run["validation_accuracy"] <= 1.0
        assert run["num_test"] == 3 * 4 and run["num_validation"] == 3 * 3, "the same splits for every method"
        assert run["data"] == f"local folder {data}"
    for shots in (1, 2):
        assert set(by["tip-adapter", shots]["hyperparameters"]) == {"alpha", "beta"}
        assert by["tip-adapter-f", shots]["hyperparameters"]["num_train_epochs"] == 2
        assert set(by["gda", shots]["hyperparameters"]) >= {"alpha"}
    assert by["zero-shot", 1]["test_accuracy"] == by["zero-shot", 2]["test_accuracy"], "zero-shot ignores the shots"
    stored_runs = json.loads((out / "runs" / "eurosat.json").read_text())
    assert stored_runs["class_names"] == ["Annual Crop Land", "Forest", "Sea or Lake"], "the preset's renames"

    stored = json.loads((out / "results.json").read_text())
    assert stored["summary"]["eurosat"]["tip-adapter-f"]["2"]["n"] == 1 and stored["failures"] == {}
    assert stored["summary"]["eurosat"]["tip-adapter"]["1"]["mean"] == pytest.approx(
        100 * by["tip-adapter", 1]["test_accuracy"]
    )
    table = (out / "results.md").read_text()
    for text in (
        "| method | 1-shot | 2-shot |",
        "| Tip-Adapter-F |",
        "| GDA |",
        "### 2-shot summary",
        "37.52 / 70.54 / 84.54",
    ):
        assert text in table
    assert "CLIP-Adapter" not in table, "only the methods asked"
    features = sorted((out / "features").glob("*.safetensors"))
    assert features, "validation/test features are cached"

    # a re-run reads the finished dataset and the feature cache: nothing is recomputed or re-encoded
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
    results = reproduce.main([*argv, "--methods", "zero-shot", "tip-adapter", "tip-adapter-f", "--skip_finetune"])
    assert all(run["method"] != "tip-adapter-f" for run in results["runs"]), "--skip_finetune drops trained heads"
    assert sorted({run["seed"] for run in results["runs"]}) == [1, 2]
    cell = results["summary"]["toy"]["tip-adapter"][2]
    assert cell["n"] == 2 and cell["std"] >= 0
    assert " ± " in (out / "results.md").read_text() and "dtd" not in results["summary"]


def test_failing_dataset_does_not_stop_the_next(reproduce, tiny_clip_dir, tmp_path, monkeypatch):
    """A dataset that fails (here: 1 image per class for 2 shots) is logged and recorded in results.json, the next
    one still runs, and the script exits with status 1."""
    broken = write_imagefolder(tmp_path / "broken", {"train": 1, "val": 1, "test": 1}, ["Red", "Green"])
    good = write_imagefolder(tmp_path / "good", {"train": 3, "val": 2, "test": 2}, ["Red", "Green"])
    monkeypatch.setitem(reproduce.DATASETS, "broken", reproduce.DatasetSource(local_dir=str(broken), preset="dtd"))
    monkeypatch.setitem(reproduce.DATASETS, "good", reproduce.DatasetSource(local_dir=str(good), preset="dtd"))
    out = tmp_path / "out"
    argv = [*common_args(tiny_clip_dir, out), "--datasets", "broken", "good", "--shots", "2", "--seeds", "1"]
    argv += ["--methods", "zero-shot", "tip-adapter"]
    results = reproduce.main(argv)

    assert set(results["failures"]) == {"broken"}
    assert "fewer than 2 examples" in results["failures"]["broken"]["error"]
    assert {(r["dataset"], r["method"]) for r in results["runs"]} == {("good", "zero-shot"), ("good", "tip-adapter")}
    stored = json.loads((out / "results.json").read_text())
    assert set(stored["failures"]) == {"broken"} and "good" in stored["summary"]
    assert "Failed: broken" in (out / "results.md").read_text()
    assert not (out / "runs" / "broken.json").exists(), "a failed dataset is not marked done"

    # as a script (a fresh registry: ucf101 has no Hub copy and no --dataset_dir, so it fails): exit status 1
    again = [*common_args(tiny_clip_dir, tmp_path / "again"), "--datasets", "ucf101", "--methods", "zero-shot"]
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), *again])
    with pytest.raises(SystemExit) as exit_status:
        runpy.run_path(str(SCRIPT), run_name="__main__")
    assert exit_status.value.code == 1


def test_flowers_like_data_is_carved_from_all_images(reproduce, tiny_clip_dir, tmp_path, monkeypatch):
    """Oxford Flowers' official split has 10 train images per class: 16 shots would raise. Its source merges every
    split and carves 50/20/30 per class (CoOp's shares), so 16 shots run."""
    assert reproduce.DATASETS["oxford_flowers"].merge_splits
    data = write_imagefolder(tmp_path / "flowers", {"train": 10, "val": 10, "test": 20}, ["rose", "tulip", "iris"])
    source = dataclasses.replace(reproduce.DATASETS["oxford_flowers"], hub_id=None, local_dir=str(data))
    monkeypatch.setitem(reproduce.DATASETS, "oxford_flowers", source)
    monkeypatch.setitem(
        reproduce.DATASETS,
        "flowers_official",
        dataclasses.replace(source, merge_splits=False, preset="oxford_flowers"),
    )

    args = reproduce.parse_args(["--output_dir", str(tmp_path)])
    dataset = reproduce.load_protocol_splits("oxford_flowers", source, args)
    assert {k: len(v) for k, v in dataset.items()} == {"train": 60, "validation": 24, "test": 36}  # 20/8/12 per class
    for split in dataset.values():
        assert sorted(set(split["label"])) == [0, 1, 2]

    out = tmp_path / "out"
    argv = [*common_args(tiny_clip_dir, out), "--datasets", "flowers_official", "oxford_flowers", "--shots", "16"]
    results = reproduce.main([*argv, "--seeds", "1", "--methods", "zero-shot", "tip-adapter"])
    assert set(results["failures"]) == {"flowers_official"}, "the official split's 10 images per class are too few"
    assert "fewer than 16 examples" in results["failures"]["flowers_official"]["error"]
    assert {(r["dataset"], r["shots"]) for r in results["runs"]} == {("oxford_flowers", 16)}


def test_stanford_cars_classes_are_renamed_year_first():
    """The Hub copies name Stanford Cars' classes "AM General Hummer SUV 2000"; the paper's prompts (CoOp's reader)
    put the year first."""
    from hf_tip.data.templates import get_preset

    names = ["AM General Hummer SUV 2000", "Bentley Continental Supersports Conv. Convertible 2012", "no year here"]
    assert get_preset("stanford_cars").clean_class_names(names) == [
        "2000 AM General Hummer SUV",
        "2012 Bentley Continental Supersports Conv. Convertible",
        "no year here",
    ]
    assert get_preset("dtd").clean_class_names(["banded 2000"]) == ["banded 2000"], "only Stanford Cars"


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
