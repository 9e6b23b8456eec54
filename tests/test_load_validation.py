"""Loading validates the adapter (issue 9, item 3): a saved folder whose head tensors are missing, mis-shaped, NaN or
out of range raises one `ValueError` naming the folder and the tensor, through `from_pretrained`, the registered Auto
class, remote code without hf_tip, and the pipeline. Today's main loads such folders (zeros, random backbone weights,
an index error at the first forward) or fails with a bare traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file
from transformers import AutoModelForImageClassification, pipeline

from hf_tip import TipAdapterForImageClassification


def _edit_weights(folder: Path, edit) -> None:
    tensors = load_file(folder / "model.safetensors")
    edit(tensors)
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})


def _edit_config(folder: Path, **changes) -> None:
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


def _nan_key(t):
    t["cache_keys"][1, 0] = float("nan")


def _zero_key(t):
    t["cache_keys"][2] = 0.0


def _label_out_of_range(t):
    t["cache_labels"][0] = 7


def _negative_label(t):
    t["cache_labels"][3] = -1


def _inf_text_weight(t):
    t["zero_shot_weights"][0, 0] = float("inf")


def _zero_text_weight(t):
    t["zero_shot_weights"][1] = 0.0


# (case, what to break, the tensor the message must name)
CASES = {
    "nan_keys": (lambda f: _edit_weights(f, _nan_key), "cache_keys"),
    "zero_key": (lambda f: _edit_weights(f, _zero_key), "cache_keys"),
    "missing_cache_keys": (lambda f: _edit_weights(f, lambda t: t.pop("cache_keys")), "cache_keys"),
    "missing_zero_shot_weights": (
        lambda f: _edit_weights(f, lambda t: t.pop("zero_shot_weights")),
        "zero_shot_weights",
    ),
    "missing_cache_labels": (lambda f: _edit_weights(f, lambda t: t.pop("cache_labels")), "cache_labels"),
    "labels_out_of_range": (lambda f: _edit_weights(f, _label_out_of_range), "cache_labels"),
    "negative_label": (lambda f: _edit_weights(f, _negative_label), "cache_labels"),
    "inf_text_weights": (lambda f: _edit_weights(f, _inf_text_weight), "zero_shot_weights"),
    "zero_text_weight": (lambda f: _edit_weights(f, _zero_text_weight), "zero_shot_weights"),
    "cache_size_smaller": (lambda f: _edit_config(f, cache_size=5), "cache_keys"),
    "cache_size_larger": (lambda f: _edit_config(f, cache_size=9), "cache_keys"),
    "missing_backbone_weight": (
        lambda f: _edit_weights(f, lambda t: t.pop("clip.visual_projection.weight")),
        "clip.visual_projection.weight",
    ),
}


@pytest.fixture(scope="module")
def bad_folders(tmp_path_factory):
    """One saved folder per case, each broken in one way."""
    from conftest import CLASS_NAMES, make_images

    from hf_tip.backbones import random_clip

    clip, processor = random_clip("tiny", seed=0)
    model = TipAdapterForImageClassification.from_clip(clip, CLASS_NAMES, processor=processor)
    labels = [0, 1, 2, 0, 1, 2]
    model.build_cache(make_images(labels, seed=1), labels, augment_epochs=1, show_progress=False)
    root = tmp_path_factory.mktemp("bad")
    model.save_pretrained(root / "good")
    folders = {}
    for case, (breaker, _) in CASES.items():
        folder = root / case
        model.save_pretrained(folder)
        breaker(folder)
        folders[case] = folder
    return root / "good", folders


def _assert_names(message: str, folder: Path, tensor: str) -> None:
    assert str(folder) in message, message
    assert f"`{tensor}`" in message, message


@pytest.mark.parametrize("case", sorted(CASES))
def test_from_pretrained_and_the_auto_class_refuse_a_bad_folder(bad_folders, case):
    _, folders = bad_folders
    folder, tensor = folders[case], CASES[case][1]
    for loader in (TipAdapterForImageClassification, AutoModelForImageClassification):
        with pytest.raises(ValueError) as caught:
            loader.from_pretrained(folder)
        _assert_names(str(caught.value), folder, tensor)


@pytest.mark.parametrize("case", ["nan_keys", "missing_cache_keys", "labels_out_of_range", "cache_size_smaller"])
def test_the_pipeline_refuses_a_bad_folder(bad_folders, case):
    _, folders = bad_folders
    with pytest.raises(ValueError) as caught:
        pipeline("image-classification", model=str(folders[case]))
    _assert_names(str(caught.value), folders[case], CASES[case][1])


def test_a_good_folder_still_loads_and_reports_its_loading_info(bad_folders):
    good, _ = bad_folders
    model, info = TipAdapterForImageClassification.from_pretrained(good, output_loading_info=True)
    assert not info["missing_keys"] and not info["mismatched_keys"]
    assert model.processor is not None and not model.cache_keys.requires_grad


CHILD = textwrap.dedent(
    """
    import json, sys
    sys.modules["hf_tip"] = None  # only the folder's own code runs
    from transformers import AutoModelForImageClassification
    report = {}
    for case, folder in json.loads(sys.argv[1]).items():
        try:
            AutoModelForImageClassification.from_pretrained(folder, trust_remote_code=True)
            report[case] = ["loaded", ""]
        except Exception as error:
            report[case] = [type(error).__name__, str(error)]
    print("REPORT" + json.dumps(report))
    """
)


def test_remote_code_refuses_a_bad_folder_without_hf_tip(bad_folders, tmp_path):
    good, folders = bad_folders
    cases = {"good": str(good), **{case: str(folders[case]) for case in CASES}}
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "HF_HUB_OFFLINE"}}
    env.update(HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"), TOKENIZERS_PARALLELISM="false")
    done = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(cases)],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(done.stdout.split("REPORT", 1)[1])
    assert report["good"][0] == "loaded", report["good"]
    for case in CASES:
        kind, message = report[case]
        assert kind == "ValueError", (case, kind, message)
        _assert_names(message, folders[case], CASES[case][1])
