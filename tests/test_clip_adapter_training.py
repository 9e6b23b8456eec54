"""CLIP-Adapter trained by the same Accelerate loop as Tip-Adapter-F (`hf_tip.training.trainer.finetune`): exactly the
adapter's two weights train, with the recipe its config states (SGD, momentum, weight decay, a constant warm-up, a
cosine stepped per epoch); checkpoints are safetensors + JSON; a run interrupted after an epoch and resumed ends
bit-identical to an uninterrupted one; every step is replayed against an independent computation; `hf-tip finetune
--method clip-adapter` trains one from a backbone folder."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import CLASS_NAMES
from safetensors.torch import load_file

from hf_tip import ClipAdapterForImageClassification
from hf_tip.training import trainer as training
from hf_tip.training.checkpoints import STATE_FILE, TENSORS_FILE
from hf_tip.training.trainer import FinetuneConfig, finetune

ADAPTER = ("adapter_fc1", "adapter_fc2")
# not the defaults (SGD 2e-3, momentum 0.9, wd 5e-4, 200 epochs, warm-up 1e-5): each must come from the config
RECIPE = dict(num_epochs=3, learning_rate=0.5, momentum=0.8, weight_decay=1e-3, warmup_epochs=1, warmup_lr=1e-4)


@pytest.fixture
def accelerator():
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    yield Accelerator(cpu=True)
    AcceleratorState._reset_state(reset_partial_state=True)


@pytest.fixture
def splits(image_dataset):
    from datasets import DatasetDict

    return DatasetDict(train=image_dataset, validation=image_dataset)


@pytest.fixture(scope="module")
def clip_adapter(tiny_clip):
    clip, processor = tiny_clip
    return ClipAdapterForImageClassification.from_clip(clip, CLASS_NAMES, processor=processor, **RECIPE)


def run_config(**kwargs) -> FinetuneConfig:
    """6 examples, batch 4: 2 steps per epoch; epochs and the optimizer recipe left to the model's config."""
    return FinetuneConfig(num_shots=2, num_augmented_views=2, per_device_train_batch_size=4, seed=1, **kwargs)


class Interrupted(Exception):
    pass


def test_finetune_trains_exactly_the_adapter_with_the_recipe_of_its_config(
    clip_adapter, splits, accelerator, tmp_path
):
    model = copy.deepcopy(clip_adapter)
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    out = tmp_path / "run"
    results = finetune(model, splits, run_config(output_dir=str(out), checkpointing_steps="epoch"), accelerator)
    after = model.state_dict()
    assert [name for name in before if not torch.equal(before[name], after[name])] == list(ADAPTER)
    assert results["trained"] == list(ADAPTER) and results["num_train_epochs"] == 3
    recipe = results["finetune_config"]
    assert (recipe["optimizer"], recipe["learning_rate"], recipe["momentum"], recipe["weight_decay"]) == (
        "sgd", 0.5, 0.8, 1e-3,
    )  # fmt: skip
    assert (recipe["warmup_epochs"], recipe["warmup_learning_rate"], recipe["lr_scheduler_unit"]) == (1, 1e-4, "epoch")
    # the lr of the next epoch after each: cosine over 3 epochs, restarted after 1 warm-up epoch
    lrs = [record["learning_rate"] for record in results["history"]]
    assert lrs == pytest.approx([0.5 * (1 + math.cos(math.pi * e / 3)) / 2 for e in range(3)], rel=1e-12)
    folders = sorted((out / "checkpoints").iterdir())
    assert [p.name for p in folders] == ["epoch_0", "epoch_1", "epoch_2"]
    for folder in folders:
        assert sorted(p.name for p in folder.iterdir()) == [STATE_FILE, TENSORS_FILE]
        assert {f"params.{n}" for n in ADAPTER} <= set(load_file(folder / TENSORS_FILE))
    saved = ClipAdapterForImageClassification.from_pretrained(out)
    embeds = torch.randn(5, model.feature_dim)
    assert torch.equal(saved(image_embeds=embeds).logits, model(image_embeds=embeds).logits)
    assert not any(p.requires_grad for p in saved.parameters())


def test_a_run_interrupted_after_an_epoch_resumes_bit_identical(clip_adapter, splits, accelerator, tmp_path):
    straight = copy.deepcopy(clip_adapter)
    full = finetune(straight, splits, run_config(output_dir=str(tmp_path / "a"), checkpointing_steps="epoch"),
                    accelerator)  # fmt: skip

    def stop_after_first_epoch(completed_steps: int) -> None:
        if completed_steps == 2:  # after epoch 0's evaluation and checkpoint
            raise Interrupted

    config = run_config(output_dir=str(tmp_path / "b"), checkpointing_steps="epoch")
    with pytest.raises(Interrupted):
        finetune(copy.deepcopy(clip_adapter), splits, config, accelerator, on_step=stop_after_first_epoch)
    assert sorted(p.name for p in (tmp_path / "b" / "checkpoints").iterdir()) == ["epoch_0"]
    resumed = copy.deepcopy(clip_adapter)
    again = finetune(resumed, splits, run_config(output_dir=str(tmp_path / "b"), checkpointing_steps="epoch",
                                                 resume_from_checkpoint="latest"), accelerator)  # fmt: skip
    assert again["resumed_from"].endswith("epoch_0")
    for name in ADAPTER:
        assert torch.equal(getattr(resumed, name), getattr(straight, name)), name
    assert again["history"] == full["history"] and again["best_epoch"] == full["best_epoch"]
    saved_a, saved_b = (load_file(tmp_path / run / "model.safetensors") for run in ("a", "b"))
    assert all(torch.equal(saved_a[name], saved_b[name]) for name in ADAPTER)


def test_clip_adapter_sgd_warmup_and_cosine_per_epoch_replay(clip_adapter, splits, accelerator, monkeypatch):
    """Every step recomputed here: the epoch's order (the data module's), the CLIP-Adapter logits written out
    (`s · normalize(0.2 · ReLU(ReLU(f W₁ᵀ) W₂ᵀ) + 0.8 · f) Wᵀ`), the cross-entropy, and SGD by hand: L2 weight decay
    added to the gradient, momentum buffer `m · buf + d` (the first step: `d`), lr 1e-4 for the warm-up epoch then
    `0.5 · (1 + cos(π (e - 1) / 3)) / 2`, constant within an epoch."""
    model = copy.deepcopy(clip_adapter)
    initial = [getattr(model, n).detach().clone() for n in ADAPTER]
    seen, recorded = {}, [initial]
    real = training.train_epoch

    def spy(*args, **kwargs):
        seen.setdefault("labels", args[4].clone())
        seen.setdefault("bank", kwargs["feature_bank"].clone())
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "train_epoch", spy)
    finetune(model, splits, run_config(), accelerator,
             on_step=lambda _: recorded.append([getattr(model, n).detach().clone() for n in ADAPTER]))  # fmt: skip
    labels, bank = seen["labels"], seen["bank"]
    weights, scale = model.zero_shot_weights.detach(), model.clip.logit_scale.exp().detach()
    params, buffers, expected = [w.clone() for w in initial], [None, None], [initial]
    for epoch in range(3):
        lr = 1e-4 if epoch < 1 else 0.5 * (1 + math.cos(math.pi * (epoch - 1) / 3)) / 2
        order = training.epoch_order(len(labels), 1, epoch)
        for start in range(0, len(order), 4):
            idx = torch.as_tensor(order[start : start + 4])
            f = F.normalize(bank[epoch % bank.shape[0], idx], dim=-1)
            w1, w2 = (p.clone().requires_grad_(True) for p in params)
            adapted = F.normalize(0.2 * torch.relu(torch.relu(f @ w1.T) @ w2.T) + 0.8 * f, dim=-1)
            F.cross_entropy(scale * adapted @ weights.T, labels[idx]).backward()
            for i, grad in enumerate((w1.grad, w2.grad)):
                d = grad + 1e-3 * params[i]
                buffers[i] = d if buffers[i] is None else 0.8 * buffers[i] + d
                params[i] = params[i] - lr * buffers[i]
            expected.append([p.clone() for p in params])
    assert len(recorded) == len(expected) == 7
    for step, (got, want) in enumerate(zip(recorded, expected, strict=True)):
        for name, g, w in zip(ADAPTER, got, want, strict=True):
            torch.testing.assert_close(g, w, atol=2e-6, rtol=0, msg=f"step {step}, {name}")
    warmup = max((recorded[2][i] - recorded[0][i]).abs().max() for i in range(2))
    trained = max((recorded[4][i] - recorded[2][i]).abs().max() for i in range(2))
    assert warmup < 1e-3 < 1e-2 < trained  # the warm-up epoch barely moves; the cosine's first epoch does


def test_hf_tip_finetune_trains_a_clip_adapter(tmp_path, tiny_clip_dir):
    from test_finetune import write_imagefolder
    from test_finetune_cli import launch_module

    folders = [("--train_dir", write_imagefolder(tmp_path / "train", 3, 1)),
               ("--validation_dir", write_imagefolder(tmp_path / "validation", 3, 2))]  # fmt: skip
    data = [str(item) for pair in folders for item in pair]

    def args(out, per_device: int) -> list[str]:
        return ["--method", "clip-adapter", "--model_name_or_path", str(tiny_clip_dir), "--num_shots", "2",
                "--num_train_epochs", "2", "--per_device_train_batch_size", str(per_device), "--num_augmented_views",
                "2", "--output_dir", str(out), "--checkpointing_steps", "epoch", *data]  # fmt: skip

    out, out_two = tmp_path / "out", tmp_path / "out_two"
    done = launch_module(tmp_path, 1, args(out, 4))
    assert done.returncode == 0, done.stderr[-4000:]
    assert json.loads((out / "config.json").read_text())["model_type"] == "clip-adapter"
    results = json.loads((out / "all_results.json").read_text())
    assert results["trained"] == list(ADAPTER) and results["optimizer"] == "sgd"
    assert results["finetune_config"]["lr_scheduler_unit"] == "epoch" and "clip_adapter_accuracy" in results
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["epoch_0", "epoch_1"]
    model = ClipAdapterForImageClassification.from_pretrained(out)
    initial = ClipAdapterForImageClassification.from_clip(str(tiny_clip_dir), ["a", "b", "c"])
    assert not torch.equal(model.adapter_fc1, initial.adapter_fc1)  # trained from the seeded init
    # 2 processes x 2 examples: the same global batch of 4, the same trajectory (gradients summed over the slices)
    two = launch_module(tmp_path, 2, args(out_two, 2))
    assert two.returncode == 0, two.stderr[-4000:]
    two_results = json.loads((out_two / "all_results.json").read_text())
    assert (two_results["num_processes"], two_results["train_batch_size"], results["train_batch_size"]) == (2, 4, 4)
    accuracies = [[h["validation_accuracy"] for h in r["history"]] for r in (results, two_results)]
    assert accuracies[0] == accuracies[1]
    two_model = ClipAdapterForImageClassification.from_pretrained(out_two)
    for name in ADAPTER:
        torch.testing.assert_close(getattr(two_model, name), getattr(model, name), atol=1e-6, rtol=0)
    wrong = launch_module(tmp_path, 1, ["--model_name_or_path", str(out), "--output_dir", str(tmp_path / "x"), *data])
    assert wrong.returncode == 1 and "clip-adapter" in wrong.stderr and "--method" in wrong.stderr
