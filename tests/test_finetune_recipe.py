"""The fine-tuning recipe pinned, checkpoints without pickle, and the transformers `Trainer` path (in-process).

The replay tests run `finetune` itself (its defaults: Tip-Adapter-F's AdamW eps 1e-4, weight decay 0.01, cosine over
epochs x iterations) and recompute every step here, independently: the epoch's order, the Tip logits, the
cross-entropy, and the optimizer's update written out by hand. Changing eps 1e-4 -> 1e-8, the weight decay, or the
cosine period breaks them.
"""

from __future__ import annotations

import copy
import json
import math
import pickle

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from hf_tip.training import trainer as training
from hf_tip.training.checkpoints import STATE_FILE, TENSORS_FILE, CheckpointError
from hf_tip.training.trainer import FinetuneConfig, finetune


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


def run_and_record(model, splits, accelerator, monkeypatch, **kwargs):
    """`finetune` with 2 epochs of 2 steps; returns the keys after every step, the labels and the training bank."""
    seen, after_step = {}, [model.cache_keys.detach().clone()]
    real = training.train_epoch

    def spy(*args, **kw):
        seen.setdefault("labels", args[4].clone())
        seen.setdefault("bank", kw["feature_bank"].clone())
        return real(*args, **kw)

    monkeypatch.setattr(training, "train_epoch", spy)
    config = FinetuneConfig(num_shots=2, num_train_epochs=2, num_augmented_views=2, per_device_train_batch_size=4,
                            alpha=1.5, beta=4.0, seed=1, **kwargs)  # fmt: skip
    finetune(
        model, splits, config, accelerator, on_step=lambda _: after_step.append(model.cache_keys.detach().clone())
    )
    return after_step, seen["labels"], seen["bank"]


def replay(model, initial_keys, labels, bank, update, num_epochs=2, batch=4, seed=1, alpha=1.5, beta=4.0):
    """The keys after every step, recomputed here: `update(keys, grad, step, state) -> keys`."""
    weights, scale = model.zero_shot_weights.detach(), model.clip.logit_scale.exp().detach()
    one_hot = F.one_hot(model.cache_labels, weights.shape[0]).float()
    keys, state, out, step = initial_keys.clone(), {}, [initial_keys.clone()], 0
    for epoch in range(num_epochs):
        order = training.epoch_order(len(labels), seed, epoch)  # the order is the data module's; the update is ours
        for start in range(0, len(order), batch):
            idx = torch.as_tensor(order[start : start + batch])
            f = F.normalize(bank[epoch % bank.shape[0], idx], dim=-1)
            k = keys.clone().requires_grad_(True)
            logits = scale * f @ weights.T + alpha * torch.exp(-beta * (1 - f @ k.T)) @ one_hot
            F.cross_entropy(logits, labels[idx]).backward()
            keys = update(keys, k.grad, step, state)
            out.append(keys.clone())
            step += 1
    return out


def test_tip_adapter_f_replays_adamw_eps_1e4_and_cosine_over_all_steps(adapter, splits, accelerator, monkeypatch):
    model = copy.deepcopy(adapter)
    initial = model.cache_keys.detach().clone()
    recorded, labels, bank = run_and_record(model, splits, accelerator, monkeypatch)
    total, lr0, eps, wd, (b1, b2) = 4, 1e-3, 1e-4, 0.01, (0.9, 0.999)

    def adamw(keys, grad, step, state):
        lr = lr0 * (1 + math.cos(math.pi * step / total)) / 2  # CosineAnnealingLR(epochs x iterations)
        m = state["m"] = b1 * state.get("m", 0) + (1 - b1) * grad
        v = state["v"] = b2 * state.get("v", 0) + (1 - b2) * grad * grad
        keys = keys * (1 - lr * wd)  # decoupled weight decay
        return keys - lr * (m / (1 - b1 ** (step + 1))) / ((v / (1 - b2 ** (step + 1))).sqrt() + eps)

    expected = replay(model, initial, labels, bank, adamw)
    assert len(recorded) == len(expected) == 5
    for step, (got, want) in enumerate(zip(recorded, expected, strict=True)):
        torch.testing.assert_close(got, want, atol=2e-6, rtol=0, msg=f"step {step}")
    assert (recorded[-1] - initial).abs().max() > 1e-3  # it trained


def test_sgd_with_a_constant_warmup_replays(adapter, splits, accelerator, monkeypatch):
    """CoOp's / CLIP-Adapter's recipe: SGD (momentum 0.9, weight decay 5e-4), one warm-up epoch at a constant 1e-5,
    then a cosine stepped per epoch over the run's epochs, restarted after the warm-up."""
    model = copy.deepcopy(adapter)
    initial = model.cache_keys.detach().clone()
    recipe = dict(optimizer="sgd", learning_rate=0.5, weight_decay=5e-4, momentum=0.9, warmup_epochs=1,
                  warmup_learning_rate=1e-5, lr_scheduler_unit="epoch")  # fmt: skip
    recorded, labels, bank = run_and_record(model, splits, accelerator, monkeypatch, **recipe)

    def sgd(keys, grad, step, state):
        epoch = step // 2
        lr = 1e-5 if epoch < 1 else 0.5 * (1 + math.cos(math.pi * (epoch - 1) / 2)) / 2
        d = grad + 5e-4 * keys
        buf = state["buf"] = d if "buf" not in state else 0.9 * state["buf"] + d
        return keys - lr * buf

    expected = replay(model, initial, labels, bank, sgd)
    for step, (got, want) in enumerate(zip(recorded, expected, strict=True)):
        torch.testing.assert_close(got, want, atol=2e-6, rtol=0, msg=f"step {step}")
    assert (recorded[2] - recorded[0]).abs().max() < 1e-4 < 1e-2 < (recorded[4] - recorded[2]).abs().max()  # warm-up


def test_recipe_defaults_come_from_the_model_config(adapter):
    resolved = FinetuneConfig().resolve(adapter)
    assert (resolved.optimizer, resolved.learning_rate, resolved.adam_epsilon, resolved.weight_decay) == (
        "adamw", 1e-3, 1e-4, 0.01,
    )  # fmt: skip
    assert (resolved.num_train_epochs, resolved.warmup_epochs, resolved.lr_scheduler_unit) == (20, 0, "step")
    model = copy.deepcopy(adapter)
    model.config.optimizer, model.config.learning_rate = "sgd", 2e-3  # a method's config carrying its recipe
    assert FinetuneConfig().resolve(model).optimizer == "sgd"
    assert FinetuneConfig(optimizer="adamw").resolve(model).optimizer == "adamw"  # a flag wins
    with pytest.raises(ValueError, match=r"`optimizer` must be one of \['adamw', 'sgd'\], got 'adam'"):
        FinetuneConfig(optimizer="adam")
    with pytest.raises(ValueError, match=r"`warmup_epochs` must be an integer >= 0"):
        FinetuneConfig(warmup_epochs=-1)


# --------------------------------------------------------------------------------------------------- checkpoints
@pytest.fixture
def checkpointed(adapter, splits, accelerator, tmp_path):
    """A run of 2 epochs x 2 steps with a checkpoint after every step; its output folder."""
    out = tmp_path / "run"
    config = FinetuneConfig(num_shots=2, num_train_epochs=2, num_augmented_views=2, per_device_train_batch_size=4,
                            output_dir=str(out), checkpointing_steps=1)  # fmt: skip
    finetune(copy.deepcopy(adapter), splits, config, accelerator)
    return out, config


def test_checkpoints_hold_safetensors_and_json_only(checkpointed):
    out, _ = checkpointed
    folders = sorted((out / "checkpoints").iterdir())
    assert [p.name for p in folders] == ["step_1", "step_2", "step_3", "step_4"]
    for folder in folders:
        assert sorted(p.name for p in folder.iterdir()) == [STATE_FILE, TENSORS_FILE]
        tensors = load_file(folder / TENSORS_FILE)
        assert {"params.cache_keys", "best.cache_keys", "optimizer.0.exp_avg", "optimizer.0.exp_avg_sq"} <= set(
            tensors
        )
        assert json.loads((folder / STATE_FILE).read_text())["scheduler"]["T_max"] == 4


def test_resume_refuses_a_checkpoint_holding_pickles_and_never_loads_them(checkpointed, adapter, splits, accelerator):
    out, config = checkpointed
    folder = out / "checkpoints" / "step_2"
    marker = out / "pwned"

    class Payload:  # unpickling it would create `marker`
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (folder / "custom_checkpoint_0.pkl").write_bytes(pickle.dumps(Payload()))
    (folder / "random_states_0.pkl").write_bytes(b"\x80\x04N.")
    resume = FinetuneConfig(**{**vars(config), "resume_from_checkpoint": str(folder), "overwrite_output_dir": True})
    with pytest.raises(CheckpointError, match=r"step_2.*holds files that may be pickles \(custom_checkpoint_0\.pkl, "
                       r"random_states_0\.pkl\)"):  # fmt: skip
        finetune(copy.deepcopy(adapter), splits, resume, accelerator)
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["truncated safetensors", "bad json"])
def test_a_corrupt_latest_checkpoint_names_itself_and_offers_the_previous(
    checkpointed, adapter, splits, accelerator, damage
):
    out, config = checkpointed
    latest, previous = out / "checkpoints" / "step_4", out / "checkpoints" / "step_3"
    if damage == "bad json":
        (latest / STATE_FILE).write_text('{"completed_steps": 4, "hist')
    else:
        data = (latest / TENSORS_FILE).read_bytes()
        (latest / TENSORS_FILE).write_bytes(data[: len(data) // 2])
    for name in ("model.safetensors", "config.json"):  # the finished run's model: keep only the checkpoints
        (out / name).unlink()
    for extra in out.iterdir():
        if extra.is_file():
            extra.unlink()
    resume = FinetuneConfig(**{**vars(config), "resume_from_checkpoint": "latest"})
    with pytest.raises(CheckpointError) as caught:
        finetune(copy.deepcopy(adapter), splits, resume, accelerator)
    message = str(caught.value)
    assert f"{str(latest)!r} is corrupt" in message and f"--resume_from_checkpoint {previous}" in message
    offered = FinetuneConfig(**{**vars(config), "resume_from_checkpoint": str(previous)})
    finetune(copy.deepcopy(adapter), splits, offered, accelerator)  # the offered one resumes


# ------------------------------------------------------------------------------------------------------ Trainer
def test_transformers_trainer_trains_only_the_cache_keys(adapter, tmp_path):
    """The transformers `Trainer` path: `enable_key_finetuning()`, a dataset of precomputed `image_embeds` and
    `labels`, `remove_unused_columns=False`; the forward's `loss` trains the keys and nothing else."""
    from datasets import Dataset
    from transformers import Trainer, TrainingArguments

    model = copy.deepcopy(adapter).enable_key_finetuning()
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    generator = torch.Generator().manual_seed(0)
    embeds = torch.randn(12, model.zero_shot_weights.shape[1], generator=generator)
    dataset = Dataset.from_dict({"image_embeds": embeds.tolist(), "labels": [i % 3 for i in range(12)]})
    args = TrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=4, num_train_epochs=2, learning_rate=1e-2,
        remove_unused_columns=False, report_to=[], use_cpu=True, save_strategy="no", disable_tqdm=True,
    )  # fmt: skip
    Trainer(model=model, args=args, train_dataset=dataset).train()
    after = model.state_dict()
    changed = [name for name in before if not torch.equal(before[name], after[name])]
    assert changed == ["cache_keys"]
    assert (before["cache_keys"] - after["cache_keys"]).abs().max() > 1e-3
