"""Issue 17 (items 4, 5, 7, 8, 10): loads, saves, checkpoints and configs that would give a silent wrong answer."""

from __future__ import annotations

import errno
import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file, save_file

from hf_tip.training import checkpoints
from hf_tip.training.checkpoints import CheckpointError, RunState, load_checkpoint, restore, save_checkpoint

MAIN = SimpleNamespace(is_main_process=True, wait_for_everyone=lambda: None)


def _run(rows: int = 12, dim: int = 4):
    model = torch.nn.Module()
    model.keys = torch.nn.Parameter(torch.randn(rows, dim))
    optimizer = torch.optim.AdamW([model.keys], lr=0.1)
    model.keys.grad = torch.ones_like(model.keys)
    optimizer.step()
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    return model, optimizer, scheduler, RunState(signature={"lr": 0.1}, completed_steps=3)


def test_checkpoint_restore_refuses_a_broadcastable_tensor_and_names_nan(tmp_path):
    model, optimizer, scheduler, run = _run()
    folder = save_checkpoint(MAIN, tmp_path, "epoch_0", run, model, optimizer, scheduler)
    tensors_file = folder / checkpoints.TENSORS_FILE
    tensors = load_file(tensors_file)
    meta, loaded = load_checkpoint(folder)
    restore(meta, loaded, RunState(signature={"lr": 0.1}), *_run()[:3])  # the good one restores

    edited = dict(tensors, **{"params.keys": tensors["params.keys"][:1].clone()})  # [1,D] for [12,D]
    save_file(edited, tensors_file)
    fresh = _run()
    before = fresh[0].keys.detach().clone()
    with pytest.raises(CheckpointError, match=r"`params.keys` has shape \(1, 4\).*shape \(12, 4\)"):
        restore(*load_checkpoint(folder), RunState(signature={"lr": 0.1}), *fresh[:3])
    assert torch.equal(fresh[0].keys, before)  # nothing was copied

    edited = dict(tensors, **{"best.keys": torch.full_like(tensors["best.keys"], math.nan)})
    save_file(edited, tensors_file)
    with pytest.raises(CheckpointError, match=r"`best.keys` holds NaN.*diverged") as caught:
        restore(*load_checkpoint(folder), RunState(signature={"lr": 0.1}), *_run()[:3])
    assert "bug" not in str(caught.value)


def test_disk_full_while_checkpointing_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    model, optimizer, scheduler, run = _run()
    folder = save_checkpoint(MAIN, tmp_path, "latest", run, model, optimizer, scheduler)
    saved = load_file(folder / checkpoints.TENSORS_FILE)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoints, "save_file", full)
    with torch.no_grad():
        model.keys.add_(1.0)
    run.completed_steps = 6
    with pytest.raises(CheckpointError, match="No space left on device.*earlier checkpoints are intact") as caught:
        save_checkpoint(MAIN, tmp_path, "latest", run, model, optimizer, scheduler)
    assert "\n" not in str(caught.value)
    meta, tensors = load_checkpoint(folder)
    assert meta["completed_steps"] == 3 and torch.equal(tensors["params.keys"], saved["params.keys"])
    assert sorted(p.name for p in folder.parent.iterdir()) == ["latest"]  # no temporary folder left behind
    assert json.loads((folder / checkpoints.STATE_FILE).read_text())["completed_steps"] == 3


def test_a_truncated_feature_cache_is_encoded_again(tiny_clip, image_dataset, tmp_path):
    from hf_tip.pipeline.encoding import encode_dataset

    model, processor = tiny_clip
    embeds, labels = encode_dataset(
        model, processor.image_processor, image_dataset, cache_dir=tmp_path, show_progress=False
    )
    (cached,) = tmp_path.glob("features-*.safetensors")
    data = cached.read_bytes()
    cached.write_bytes(data[: len(data) // 2])  # a kill or a full disk mid-copy
    with pytest.warns(UserWarning, match=r"feature cache .* is unreadable.*encoding again"):
        again, again_labels = encode_dataset(
            model, processor.image_processor, image_dataset, cache_dir=tmp_path, show_progress=False
        )
    assert torch.equal(again, embeds) and torch.equal(again_labels, labels)
    assert cached.read_bytes() == data  # rewritten whole


@pytest.mark.parametrize(
    ("config_class", "field", "good"),
    [
        ("TipAdapterConfig", "alpha", 2.0),
        ("TipAdapterConfig", "beta", 3.0),
        ("TipXConfig", "gamma", 0.5),
        ("GDAConfig", "alpha", 1.0),
        ("LinearProbeConfig", "c", 0.1),
        ("ClipAdapterConfig", "residual_ratio", 0.3),
        ("ClipAdapterConfig", "learning_rate", 0.01),
    ],
)
def test_configs_validate_on_assignment_as_in_init(config_class, field, good):
    import hf_tip

    cls = getattr(hf_tip, config_class)
    config = cls(id2label={0: "cat", 1: "dog"})
    setattr(config, field, good)
    assert getattr(config, field) == good
    for bad in (math.nan, math.inf, 1e308, -1.0, "2", True):
        with pytest.raises(ValueError, match=f"`{field}` must be") as later:
            setattr(config, field, bad)
        with pytest.raises(ValueError, match=f"`{field}` must be") as first:
            cls(id2label={0: "cat", 1: "dog"}, **{field: bad})
        assert str(later.value) == str(first.value)  # one check, not a copy
        assert getattr(config, field) == good  # the refused value never got in
    # a saved config with an edited value is refused on load as well
    assert cls.from_dict(config.to_dict()).to_dict()[field] == good


def test_an_alias_field_is_checked_too():
    from hf_tip import ClipAdapterConfig

    config = ClipAdapterConfig(id2label={0: "cat", 1: "dog"})
    with pytest.raises(ValueError, match="`num_epochs` must be an integer"):
        config.num_train_epochs = 0


# ------------------------------------------------------------------------------------ a folder loads as its own type
def _edit(folder, weights=None, **config_changes):
    if weights is not None:
        tensors = load_file(folder / "model.safetensors")
        weights(tensors)
        save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
    if config_changes:
        config = json.loads((folder / "config.json").read_text())
        config.update(config_changes)
        (folder / "config.json").write_text(json.dumps(config))


@pytest.fixture(scope="module")
def saved_heads(tmp_path_factory):
    from conftest import CLASS_NAMES, make_images

    from hf_tip import ClipAdapterForImageClassification, TipAdapterForImageClassification, TipXForImageClassification
    from hf_tip.backbones import random_clip

    clip, processor = random_clip("tiny", seed=0)
    root = tmp_path_factory.mktemp("heads")
    labels = [0, 1, 2, 0, 1, 2]
    for name, cls in (("tip", TipAdapterForImageClassification), ("tipx", TipXForImageClassification)):
        model = cls.from_clip(clip, CLASS_NAMES, processor=processor)
        model.build_cache(make_images(labels, seed=1), labels, augment_epochs=1, show_progress=False)
        model.save_pretrained(root / name)
    ClipAdapterForImageClassification.from_clip(clip, CLASS_NAMES, processor=processor).save_pretrained(root / "ca")
    return root


def _copy(saved_heads, name, tmp_path):
    import shutil

    return Path(shutil.copytree(saved_heads / name, tmp_path / name))


def test_a_folder_of_another_method_is_refused_naming_folder_class_and_type(saved_heads, tmp_path):
    from transformers import AutoModelForImageClassification, pipeline

    from hf_tip import TipAdapterForImageClassification, ZeroShotForImageClassification

    for cls, folder, stored in (
        (TipAdapterForImageClassification, saved_heads / "tipx", "tip-x"),
        (ZeroShotForImageClassification, saved_heads / "tip", "tip-adapter"),
    ):
        with pytest.raises(ValueError, match=rf"as a {cls.__name__}: its config.json has model_type '{stored}'") as e:
            cls.from_pretrained(folder)
        assert str(folder) in str(e.value)
    # an edited model_type: the Auto class and the pipeline pick the class it names, which refuses the extra tensors
    edited = _copy(saved_heads, "tip", tmp_path)
    _edit(edited, model_type="clip-zero-shot")
    for load in (
        AutoModelForImageClassification.from_pretrained,
        lambda f: pipeline("image-classification", model=str(f)),
    ):
        with pytest.raises(ValueError, match=r"tensors a ZeroShotForImageClassification does not use.*`cache_keys`"):
            load(edited)


def test_stored_tensors_the_class_does_not_use_are_an_error(saved_heads, tmp_path):
    from hf_tip import TipAdapterForImageClassification

    folder = _copy(saved_heads, "tip", tmp_path)
    _edit(folder, weights=lambda t: t.update(adapter_fc1=torch.zeros(4, 16)))
    with pytest.raises(ValueError, match=r"does not use \(`adapter_fc1`\)"):
        TipAdapterForImageClassification.from_pretrained(folder)


@pytest.mark.parametrize("case", ["missing_fc1", "missing_fc2", "nan_fc1", "inf_fc2"])
def test_clip_adapter_tensors_are_checked_at_load(saved_heads, tmp_path, case):
    from transformers import AutoModelForImageClassification

    from hf_tip import ClipAdapterForImageClassification

    folder = _copy(saved_heads, "ca", tmp_path)
    name = "adapter_fc1" if "fc1" in case else "adapter_fc2"

    def breaker(tensors):
        if case.startswith("missing"):
            tensors.pop(name)
        else:
            tensors[name][0, 0] = math.nan if case.startswith("nan") else math.inf

    ClipAdapterForImageClassification.from_pretrained(folder)  # the good one loads
    _edit(folder, weights=breaker)
    for load in (ClipAdapterForImageClassification.from_pretrained, AutoModelForImageClassification.from_pretrained):
        with pytest.raises(ValueError, match=rf"`{name}`") as caught:
            load(folder)
        assert str(folder) in str(caught.value)


@pytest.mark.parametrize("method", ["zero-shot", "tip-adapter", "tip-x", "gda", "linear-probe", "clip-adapter"])
def test_every_search_and_fit_refuses_all_zero_features(tiny_clip, method):
    from hf_tip.methods import get_method

    clip, processor = tiny_clip
    model = get_method(method).model_class.from_clip(clip, ["cat", "dog", "owl"], processor=processor)
    dim, labels = model.feature_dim, torch.tensor([0, 1, 2, 0, 1, 2])
    views = torch.randn(2, 6, dim)
    model.fit(views, labels)
    zero_views = views.clone()
    zero_views[:, 2] = 0.0
    if method in ("gda", "linear-probe", "tip-adapter", "tip-x"):
        with pytest.raises(ValueError, match="all-zero|zero norm"):
            model.fit(zero_views, labels)
        with pytest.raises(ValueError, match="all-zero|zero norm"):
            model.fit(torch.zeros(2, 6, dim), labels)
    validation = torch.randn(6, dim)
    validation[3] = 0.0
    with pytest.raises(ValueError, match="all-zero|zero norm"):
        model.search_hyperparameters(validation, labels)
    with pytest.raises(ValueError, match="all-zero|zero norm"):
        model.search_hyperparameters(torch.zeros(6, dim), labels)


HOLD = r"""
import sys, time
from hf_tip.cli.output_dir import check_output_dir
check_output_dir(sys.argv[1], False)
print("held", flush=True)
time.sleep(60)
"""


def test_two_runs_into_one_new_output_dir_cannot_both_proceed(tmp_path):
    import os
    import subprocess
    import sys

    from hf_tip.cli.output_dir import check_output_dir

    target = tmp_path / "new" / "model"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    child = subprocess.Popen([sys.executable, "-c", HOLD, str(target)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert child.stdout.readline().strip() == "held"
        with pytest.raises(ValueError, match=r"--output_dir .* is being written by another hf-tip run"):
            check_output_dir(str(target), False)
    finally:
        child.kill()
        child.wait()
    assert check_output_dir(str(target), False) == target  # free once the other run is gone
    assert check_output_dir(str(target), False) == target  # and re-entrant within one process
    assert not target.exists()  # nothing created but the lock file beside it
