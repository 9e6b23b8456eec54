"""The `hf-tip` commands end to end on a tiny CLIP folder and generated image folders: build -> pipeline, evaluate,
demo (incl. its offline fallback), clean errors. A few runs are real subprocesses; the rest call `cli.main`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import make_images
from safetensors.torch import load_file
from transformers import pipeline

from hf_tip import TipAdapterForImageClassification
from hf_tip.cli import main
from hf_tip.cli.demo import FALLBACK, textile_dataset
from hf_tip.data.datasets import sample_few_shot
from hf_tip.data.loading import load_image_dataset
from hf_tip.pipeline.procedure import fit_training_free

FOLDERS = ["blue", "green", "red"]  # imagefolder sorts class folders; labels follow this order
COUNTS = {"train": 6, "validation": 3, "test": 3}
FAST = ["--search_step", "20", "5", "--disable_tqdm"]


def write_split(root: Path, per_class: int, seed: int, names=FOLDERS) -> Path:
    for c, name in enumerate(names):
        (root / name).mkdir(parents=True)
        # the colour channel of the image follows the folder, so classes are separable
        channel = {"red": 0, "green": 1, "blue": 2}.get(name, c)
        for i, image in enumerate(make_images([channel] * per_class, seed=seed + c)):
            image.save(root / name / f"{i:02d}.png")
    return root


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("images")
    return {split: write_split(root / split, n, seed=10 * k) for k, (split, n) in enumerate(COUNTS.items())}


@pytest.fixture
def env(tmp_path, monkeypatch) -> dict[str, str]:
    """Offline, with empty Hugging Face caches (so nothing can come from a real checkpoint)."""
    variables = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf-home"), "HF_DATASETS_OFFLINE": "1"}
    for key, value in variables.items():
        monkeypatch.setenv(key, value)
    return {**os.environ, **variables}


def build_args(backbone, folders, output_dir, tmp_path, *extra: str) -> list[str]:
    return [
        "build",
        "--model_name_or_path",
        str(backbone),
        "--train_dir",
        str(folders["train"]),
        "--validation_dir",
        str(folders["validation"]),
        "--test_dir",
        str(folders["test"]),
        "--num_shots",
        "4",
        "--augment_epochs",
        "2",
        "--output_dir",
        str(output_dir),
        "--cache_dir",
        str(tmp_path / "datasets-cache"),
        *FAST,
        *extra,
    ]


def hf_tip_executable() -> list[str]:
    script = Path(sys.executable).with_name("hf-tip")
    return [str(script)] if script.exists() else [sys.executable, "-m", "hf_tip.cli"]


def test_build_as_a_subprocess_then_pipeline(tiny_clip_dir, folders, tmp_path, env):
    out = tmp_path / "tip"
    cmd = (
        hf_tip_executable()
        + build_args(tiny_clip_dir, folders, out, tmp_path)
        + ["--feature_cache_dir", str(tmp_path / "f")]
    )
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "zero-shot CLIP" in proc.stdout and "Tip-Adapter" in proc.stdout
    results = json.loads((out / "results.json").read_text())
    assert results["num_shots"] == 4 and results["cache_size"] == 12 and results["eval_split"] == "test"
    assert results["validation"]["num_samples"] == 9 and results["test"]["num_samples"] == 9
    assert len(list((tmp_path / "f").glob("features-*.safetensors"))) == 2  # validation and test, stored once

    # the saved folder alone reproduces the reported test accuracy through the pipeline
    model = TipAdapterForImageClassification.from_pretrained(out)
    config = json.loads((out / "config.json").read_text())
    assert (config["alpha"], config["beta"]) == (results["alpha"], results["beta"])
    assert config["id2label"] == {"0": "blue", "1": "green", "2": "red"} and config["num_shots"] == 4
    assert model.cache_keys.shape == (12, 16)
    classifier = pipeline("image-classification", model=str(out))
    test = load_image_dataset(test_dir=folders["test"], cache_dir=str(tmp_path / "datasets-cache"))["test"]
    predictions = classifier(list(test["image"]), top_k=1)
    correct = [p[0]["label"] == FOLDERS[y] for p, y in zip(predictions, test["label"], strict=True)]
    assert sum(correct) / len(correct) == pytest.approx(results["test"]["tip_adapter_accuracy"])
    scores = classifier(test[0]["image"], top_k=3)
    assert sorted(s["label"] for s in scores) == FOLDERS and sum(s["score"] for s in scores) == pytest.approx(1.0)


def test_build_in_process_matches_the_library_and_is_deterministic(tiny_clip_dir, folders, tmp_path):
    assert main(build_args(tiny_clip_dir, folders, tmp_path / "a", tmp_path)) == 0
    assert main(build_args(tiny_clip_dir, folders, tmp_path / "b", tmp_path)) == 0
    a, b = load_file(tmp_path / "a" / "model.safetensors"), load_file(tmp_path / "b" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    results = json.loads((tmp_path / "a" / "results.json").read_text())
    assert results == json.loads((tmp_path / "b" / "results.json").read_text())
    # the cache holds exactly the sampler's picks, and the search's accuracy is the reported validation accuracy
    dataset = load_image_dataset(
        train_dir=folders["train"],
        validation_dir=folders["validation"],
        test_dir=folders["test"],
        cache_dir=str(tmp_path / "datasets-cache"),
    )
    picked = sample_few_shot(dataset["train"]["label"], 4, seed=1)
    assert a["cache_labels"].tolist() == [dataset["train"]["label"][i] for i in picked]
    model = TipAdapterForImageClassification.from_clip(str(tiny_clip_dir), FOLDERS)
    library = fit_training_free(
        model, dataset, num_shots=4, augment_epochs=2, search_step=(20, 5), show_progress=False
    ).to_dict()
    assert torch.allclose(model.cache_keys, a["cache_keys"], atol=1e-6)
    for key in ("alpha", "beta", "validation", "test", "zero_shot_accuracy", "tip_adapter_accuracy"):
        assert library[key] == results[key], key
    assert model.card_data["results"] == {
        "zero_shot_accuracy": results["test"]["zero_shot_accuracy"],
        "tip_adapter_accuracy": results["test"]["tip_adapter_accuracy"],
    }
    card = (tmp_path / "a" / "README.md").read_text()
    assert "hf-tip build --model_name_or_path" in card


def test_template_set_and_class_names(tiny_clip_dir, folders, tmp_path):
    out = tmp_path / "dtd"
    args = build_args(tiny_clip_dir, folders, out, tmp_path, "--template_set", "dtd", "--class_names", "B", "G", "R")
    assert main(args) == 0
    config = json.loads((out / "config.json").read_text())
    results = json.loads((out / "results.json").read_text())
    assert config["templates"] == ["{} texture."] and config["search_scale"] == [13.0, 13.0]
    assert list(config["id2label"].values()) == ["B", "G", "R"]
    assert results["template_set"] == "dtd" and results["search_scale"] == [13.0, 13.0]
    own = tmp_path / "own"
    assert main(build_args(tiny_clip_dir, folders, own, tmp_path, "--templates", "a {} thing.", "art of {}.")) == 0
    assert json.loads((own / "config.json").read_text())["templates"] == ["a {} thing.", "art of {}."]


def test_output_dir_is_not_overwritten(tiny_clip_dir, folders, tmp_path, capsys):
    out = tmp_path / "tip"
    assert main(build_args(tiny_clip_dir, folders, out, tmp_path)) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(build_args(tiny_clip_dir, folders, out, tmp_path, "--seed", "2")) == 1
    assert "already holds a model (config.json, model.safetensors)" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    other = tmp_path / "notes"
    other.mkdir()
    (other / "README.md").write_text("mine")
    assert main(build_args(tiny_clip_dir, folders, other, tmp_path)) == 1
    assert "is not empty" in capsys.readouterr().err and (other / "README.md").read_text() == "mine"
    assert main(build_args(tiny_clip_dir, folders, out, tmp_path, "--seed", "2", "--overwrite_output_dir")) == 0
    assert json.loads((out / "results.json").read_text())["seed"] == 2


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            ["--label_column", "labels"],
            r"Column(s) ['labels'] not found in the dataset; its columns are ['image', 'label']",
        ),
        (
            ["--num_shots", "7"],
            "3 class(es) have fewer than 7 examples (class: count): {'blue': 6, 'green': 6, 'red': 6}",
        ),
        (["--template_set", "mnist"], "Unknown template set 'mnist'"),
        (["--class_names", "a", "b"], "`class_names` has 2 entries"),
        (["--templates", "no placeholder"], "needs a `{}`"),
        (["--device", "abacus"], "--device 'abacus' is not a device torch knows"),
    ],
)
def test_build_errors_are_clean(tiny_clip_dir, folders, tmp_path, capsys, extra, message):
    assert main(build_args(tiny_clip_dir, folders, tmp_path / "out", tmp_path, *extra)) == 1
    err = capsys.readouterr().err
    assert "hf-tip build: error: " in err and message in err
    assert not (tmp_path / "out" / "config.json").exists()


def test_allow_fewer_shots(tiny_clip_dir, folders, tmp_path):
    out = tmp_path / "few"
    assert main(build_args(tiny_clip_dir, folders, out, tmp_path, "--num_shots", "7", "--allow_fewer_shots")) == 0
    assert json.loads((out / "config.json").read_text())["cache_size"] == 18


def test_missing_validation_split_is_named(tiny_clip_dir, folders, tmp_path, capsys):
    args = build_args(tiny_clip_dir, folders, tmp_path / "x", tmp_path)
    cut = args.index("--validation_dir")
    assert main(args[:cut] + args[cut + 2 :]) == 1
    err = capsys.readouterr().err
    assert "no `validation` split" in err and "--validation_dir" in err


def test_unavailable_backbone_is_a_clean_error_in_a_subprocess(folders, tmp_path, env):
    """The default backbone cannot be downloaded here: the error says so and how to pass a local folder."""
    args = build_args("openai/clip-vit-base-patch16", folders, tmp_path / "out", tmp_path)
    proc = subprocess.run(hf_tip_executable() + args, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "Could not load the CLIP backbone 'openai/clip-vit-base-patch16'" in proc.stderr
    assert "local folder" in proc.stderr


def test_evaluate_command(tiny_clip_dir, folders, tmp_path, capsys):
    out = tmp_path / "tip"
    assert main(build_args(tiny_clip_dir, folders, out, tmp_path)) == 0
    capsys.readouterr()
    report = tmp_path / "eval" / "test.json"
    args = ["evaluate", "--model_name_or_path", str(out), "--test_dir", str(folders["test"]), "--disable_tqdm"]
    args += ["--cache_dir", str(tmp_path / "datasets-cache"), "--output_file", str(report)]
    assert main(args) == 0
    printed = json.loads(capsys.readouterr().out)
    results = json.loads((out / "results.json").read_text())
    assert printed == json.loads(report.read_text())
    assert printed["accuracy"] == results["test"]["tip_adapter_accuracy"]
    assert printed["zero_shot_accuracy"] == results["test"]["zero_shot_accuracy"]
    assert printed["num_samples"] == 9 and printed["split"] == "test"
    assert main(args) == 1 and "already exists" in capsys.readouterr().err  # never overwrites the report
    validation = ["evaluate", "--model_name_or_path", str(out), "--validation_dir", str(folders["validation"])]
    assert main([*validation, "--split", "validation", "--disable_tqdm", "--max_eval_samples", "4"]) == 0
    assert json.loads(capsys.readouterr().out)["num_samples"] == 4
    assert main([*validation, "--disable_tqdm"]) == 1
    assert "no `test` split" in capsys.readouterr().err
    assert main(["evaluate", "--model_name_or_path", str(tmp_path / "nope"), "--test_dir", str(folders["test"])]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_demo_on_the_packaged_textile_images(tiny_clip_dir, tmp_path, capsys):
    out = tmp_path / "demo"
    args = ["demo", "--model_name_or_path", str(tiny_clip_dir), "--output_dir", str(out), "--num_shots", "2"]
    args += ["--augment_epochs", "1", "--max_eval_samples", "12", *FAST]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "zero-shot CLIP" in printed and "RANDOM-INIT" not in printed
    results = json.loads((out / "results.json").read_text())
    assert results["backbone"] == str(tiny_clip_dir) and results["cache_size"] == 6
    assert results["validation"]["num_samples"] == results["test"]["num_samples"] == 12
    classifier = pipeline("image-classification", model=str(out))
    labels = {p["label"] for p in classifier(make_images([0])[0], top_k=3)}
    assert labels == {"nominal", "local defect", "global defect"}
    # a rerun replaces the demo's own output; a foreign non-empty folder is refused
    assert main(args) == 0
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("x")
    assert main([*args[:4], str(foreign), *args[5:]]) == 1
    assert "is not empty" in capsys.readouterr().err


def test_textile_split_is_deterministic_and_disjoint(tmp_path):
    write_split(tmp_path, 8, seed=0, names=["nominal", "local", "global"])
    first, second = textile_dataset(tmp_path, seed=3), textile_dataset(tmp_path, seed=3)
    assert {s: first[s]["image"] for s in first} == {s: second[s]["image"] for s in second}  # noqa: C416
    paths = {s: [img.filename for img in first[s]["image"]] for s in first}
    assert [len(paths[s]) for s in ("train", "validation", "test")] == [12, 6, 6]
    assert len(set(sum(paths.values(), []))) == 24
    assert textile_dataset(tmp_path, seed=4)["train"]["label"] == first["train"]["label"]
    assert [img.filename for img in textile_dataset(tmp_path, seed=4)["train"]["image"]] != paths["train"]
    with pytest.raises(ValueError, match=r"lacks the class folder\(s\) \['local'\]"):
        textile_dataset(write_split(tmp_path / "partial", 4, seed=0, names=["nominal", "global"]))


def test_demo_offline_fallback_in_a_subprocess(tmp_path, env):
    data = write_split(tmp_path / "textiles", 6, seed=0, names=["nominal", "local", "global"])
    out = tmp_path / "demo"
    cmd = hf_tip_executable() + ["demo", "--data_dir", str(data), "--output_dir", str(out), "--num_shots", "2"]
    proc = subprocess.run(cmd + ["--augment_epochs", "1", *FAST], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "WARNING" in proc.stderr and "RANDOMLY INITIALISED CLIP" in proc.stderr
    assert f"backbone: {FALLBACK}" in proc.stdout and "not CLIP's accuracy" in proc.stdout
    results = json.loads((out / "results.json").read_text())
    assert results["backbone"] == FALLBACK == "random-init (offline fallback)" and "mechanics" in results["note"]
    assert json.loads((out / "config.json").read_text())["backbone_name_or_path"] == FALLBACK


def test_demo_with_an_explicit_backbone_that_fails_is_a_hard_error(tmp_path, capsys):
    assert main(["demo", "--model_name_or_path", str(tmp_path / "no-clip"), "--output_dir", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "hf-tip demo: error:" in err and "no-clip" in err
    assert not (tmp_path / "o").exists()


def test_push_to_hub_pushes_the_saved_folder(tiny_clip_dir, folders, tmp_path, monkeypatch, capsys):
    """`--push_to_hub` hands the complete saved folder to `hf_tip.hub.push.push_folder` (tested against a local Hub in
    test_hub.py) with `--hub_model_id`."""
    from types import SimpleNamespace

    import hf_tip.hub.push

    pushed = []

    def fake_push_folder(folder, repo_id, **kwargs):
        pushed.append((Path(folder), repo_id, sorted(p.name for p in Path(folder).iterdir())))
        return SimpleNamespace(repo_url=SimpleNamespace(repo_id=f"user/{repo_id.split('/')[-1]}"))

    monkeypatch.setattr(hf_tip.hub.push, "push_folder", fake_push_folder)
    out = tmp_path / "tip"
    args = build_args(tiny_clip_dir, folders, out, tmp_path, "--push_to_hub", "--hub_model_id", "user/tip-colors")
    assert main(args) == 0
    assert "Pushed to the Hub: user/tip-colors" in capsys.readouterr().out
    (folder, repo_id, files) = pushed[0]
    assert folder == out and repo_id == "user/tip-colors"
    assert {"config.json", "model.safetensors", "results.json", "tokenizer.json"} <= set(files)


# ------------------------------------------------------------------------------------ bad input, refused up front
TOKEN = "hf_" + "aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dE"


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--search_scale", "inf", "3"], "`--search_scale` must be two finite numbers"),
        (["--search_scale", "7", "3", "2"], "`--search_scale` must hold exactly two values, got [7.0, 3.0, 2.0]"),
        (["--search_step", "100000", "100000"], "`--search_step` [100000, 100000] asks for 10,000,000,000"),
        (["--max_eval_samples", "0"], "--max_eval_samples must be an integer >= 1, got 0"),
        (["--class_names", "a", "a", "b"], "`--class_names` "),
        (["--num_shots", "0"], "--num_shots must be an integer >= 1, got 0"),
        (["--train_val_split", "1.5"], "--train_val_split must be a fraction in (0, 1), got 1.5"),
    ],
)
def test_bad_flags_fail_before_any_work(folders, tmp_path, capsys, extra, message):
    """Each used to be accepted (a NaN beta saved, `a (1)` as a class), an unpack error, an 80 GB allocation, or an
    error naming `max_samples` after the cache was built. The backbone here does not exist: the flag error comes
    first, in one line, and nothing is written."""
    assert main(build_args(tmp_path / "no-clip", folders, tmp_path / "out", tmp_path, *extra)) == 1
    err = capsys.readouterr().err
    assert err.startswith("hf-tip build: error: ") and message in err and err.count("\n") == 1
    if "--class_names" in extra:
        assert "once" in err and "'a'" in err
    assert "no-clip" not in err and not (tmp_path / "out").exists()


def test_an_output_dir_that_cannot_be_written_fails_before_any_work(folders, tmp_path, capsys):
    (tmp_path / "a-file").write_text("x")
    for output_dir, message in (
        (tmp_path / "a-file" / "out", "cannot be created: "),
        (Path("/proc/hf-tip-out"), "is not writable"),
    ):
        assert main(build_args(tmp_path / "no-clip", folders, output_dir, tmp_path)) == 1
        err = capsys.readouterr().err
        assert f"hf-tip build: error: --output_dir {str(output_dir)!r}" in err and message in err
        assert "no-clip" not in err


def test_flag_syntax_errors_and_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["build", "--num_shots", "many", "--output_dir", "x"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("hf-tip build: error: argument --num_shots") and err.count("\n") == 1
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    assert all(name in printed for name in ("build", "evaluate", "demo", "push"))
    with pytest.raises(SystemExit):
        main(["build", "--help"])
    printed = capsys.readouterr().out
    for flag in ("--train_val_split", "--hub_token", "--search_scale", "--template_set", "--output_dir"):
        assert flag in printed


def test_a_config_file_gives_the_same_model_as_flags(tiny_clip_dir, folders, tmp_path, capsys):
    import yaml

    flags = build_args(tiny_clip_dir, folders, tmp_path / "flags", tmp_path)
    assert main(flags) == 0
    config = {
        "model_name_or_path": str(tiny_clip_dir),
        **{f"{s}_dir": str(folders[s]) for s in ("train", "validation", "test")},
        "num_shots": 4,
        "augment_epochs": 2,
        "search_step": [20, 5],
        "disable_tqdm": True,
        "output_dir": str(tmp_path / "file"),
        "cache_dir": str(tmp_path / "datasets-cache"),
    }
    (tmp_path / "build.yaml").write_text(yaml.safe_dump(config))
    assert main(["build", str(tmp_path / "build.yaml")]) == 0
    a, b = load_file(tmp_path / "flags" / "model.safetensors"), load_file(tmp_path / "file" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    (tmp_path / "bad.json").write_text(json.dumps({**config, "num_shot": 4}))
    assert main(["build", str(tmp_path / "bad.json")]) == 1
    assert "num_shot" in capsys.readouterr().err
    (tmp_path / "partial.json").write_text(json.dumps({"num_shots": 4}))
    assert main(["build", str(tmp_path / "partial.json")]) == 1
    err = capsys.readouterr().err
    assert "partial.json" in err and "output_dir" in err


def test_the_hub_token_is_used_for_the_push_and_written_nowhere(tiny_clip_dir, folders, tmp_path, monkeypatch):
    from types import SimpleNamespace

    import hf_tip.hub.push

    tokens = []

    def fake_push_folder(folder, repo_id, token=None, **kwargs):
        tokens.append(token)
        return SimpleNamespace(repo_url=SimpleNamespace(repo_id=repo_id))

    monkeypatch.setattr(hf_tip.hub.push, "push_folder", fake_push_folder)
    out = tmp_path / "tip"
    args = build_args(tiny_clip_dir, folders, out, tmp_path, "--push_to_hub", "--hub_model_id", "user/x")
    assert main([*args, "--hub_token", TOKEN]) == 0
    assert tokens == [TOKEN]
    files = [p for p in out.rglob("*") if p.is_file()]
    assert files and not [p.name for p in files if TOKEN.encode() in p.read_bytes()]
    assert "--hub_token '<redacted>'" in (out / "README.md").read_text()


def test_train_val_split_carves_a_validation_split(tiny_clip_dir, folders, tmp_path, capsys):
    """Without a validation split, `--train_val_split F` carves one from train (stratified, seeded); with one, the
    flag is refused."""
    args = build_args(tiny_clip_dir, folders, tmp_path / "x", tmp_path, "--train_val_split", "0.5")
    assert main(args) == 1  # a validation split is there already
    assert "already has one" in capsys.readouterr().err and not (tmp_path / "x").exists()
    cut = args.index("--validation_dir")
    assert main([*args[:cut], *args[cut + 2 :], "--num_shots", "2"]) == 0
    results = json.loads((tmp_path / "x" / "results.json").read_text())
    assert results["train_val_split"] == 0.5 and results["validation"]["num_samples"] == 9  # half of 3 x 6
    assert results["cache_size"] == 6 and results["test"]["num_samples"] == 9


def test_evaluate_bad_model_paths_and_flags(folders, tmp_path, monkeypatch, capsys, env):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    base = ["--test_dir", str(folders["test"]), "--disable_tqdm"]
    assert main(["evaluate", "--model_name_or_path", "models/missing", *base]) == 1
    err = capsys.readouterr().err
    assert err.startswith("hf-tip evaluate: error: --model_name_or_path 'models/missing'") and "no such folder" in err
    assert main(["evaluate", "--model_name_or_path", "someone/missing", *base]) == 1  # neither here nor on the Hub
    err = capsys.readouterr().err
    assert "'someone/missing': no such folder here" in err and err.count("\n") == 1
    assert main(["evaluate", "--model_name_or_path", "models", "--max_eval_samples", "0", *base]) == 1
    assert "--max_eval_samples must be an integer >= 1, got 0" in capsys.readouterr().err


def test_a_command_joins_with_one_registry_line(monkeypatch, capsys):
    """A module with `HELP`, `ARGUMENTS` (dataclasses) and `run(*arguments, argv)`, plus one `COMMANDS` entry."""
    import dataclasses
    import types

    from hf_tip import cli

    @dataclasses.dataclass
    class HelloArguments:
        name: str = dataclasses.field(default="world", metadata={"help": "Who to greet."})

        def __post_init__(self):
            if not self.name:
                raise ValueError("--name must not be empty.")

    module = types.ModuleType("hf_tip_test_hello")
    module.HELP, module.ARGUMENTS = "Say hello.", (HelloArguments,)
    module.run = lambda hello, *, argv: print(f"hello {hello.name} ({argv[0]})") or 0
    monkeypatch.setitem(sys.modules, "hf_tip_test_hello", module)
    monkeypatch.setitem(cli.COMMANDS, "hello", "hf_tip_test_hello")
    assert main(["hello", "--name", "tip"]) == 0 and capsys.readouterr().out == "hello tip (hello)\n"
    assert (
        main(["hello", "--name", ""]) == 1
        and capsys.readouterr().err == "hf-tip hello: error: --name must not be empty.\n"
    )
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "Say hello." in capsys.readouterr().out
