"""Issue 17 (items 4, 5, 7, 8, 10): loads, saves, checkpoints and configs that would give a silent wrong answer."""

from __future__ import annotations

import errno
import json
import math
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
