"""Tip-Adapter-F on Accelerate: real `accelerate launch` runs of examples/finetune.py, and library checks.

The launches are config-free (`--num_machines 1 --mixed_precision no --dynamo_backend no --num_processes N`, with
`--multi_gpu` and a free `--main_process_port` for N > 1) and run with `HF_HOME` in a temporary folder (no user
accelerate config applies), `CUDA_VISIBLE_DEVICES=""` (so N processes are gloo CPU processes on any machine: the
script itself builds `Accelerator(cpu=True)` without CUDA; `ACCELERATE_USE_CPU` is deliberately not set, and any
inherited `ACCELERATE_*` variable is dropped) and one thread per process.

The resume test kills for real: the hidden `--kill_after_steps N` flag of the example sends SIGKILL to every process
right after step N and its checkpoint (no cleanup, no atexit, the launcher exits non-zero); a second launch with
`--resume_from_checkpoint latest` must then end exactly where an uninterrupted run ends.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CLASS_NAMES, make_images
from PIL import Image
from safetensors.torch import load_file

from hf_tip import TipAdapterForImageClassification
from hf_tip.data.loading import load_image_dataset
from hf_tip.pipeline import procedure
from hf_tip.training import trainer as training
from hf_tip.training.trainer import (
    FinetuneConfig,
    check_dataset,
    check_output_dir,
    create_optimizer_and_scheduler,
    encode_view_bank,
    encode_views,
    finetune,
    sample_training_set,
    train_epoch,
)

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "finetune.py"
NAMES = sorted(CLASS_NAMES)  # imagefolder's class order
# 15 few-shot examples, a global batch of 6: 3 steps per epoch, the last one split 2/1 over two processes.
COMMON = [
    "--num_shots", "5", "--num_train_epochs", "3", "--augment_epochs", "2", "--num_augmented_views", "2",
    "--alpha", "1.0", "--beta", "2.0", "--learning_rate", "0.05", "--seed", "3", "--encode_batch_size", "16",
]  # fmt: skip
STEPS = 9


def weak_images(labels: list[int], seed: int, signal: int = 30) -> list[Image.Image]:
    """Noisy images with a faint colour cue per class, so that accuracies are not all 1 and epochs differ."""
    rng = np.random.default_rng(seed)
    images = []
    for label in labels:
        array = rng.integers(0, 256 - signal, size=(40, 48, 3))
        array[..., label] += signal
        images.append(Image.fromarray(array.astype("uint8")))
    return images


def write_imagefolder(root: Path, per_class: int, seed: int) -> Path:
    labels = [c for c in range(len(NAMES)) for _ in range(per_class)]
    for i, (image, label) in enumerate(zip(weak_images(labels, seed), labels, strict=True)):
        folder = root / NAMES[label]
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("finetune")


@pytest.fixture(scope="module")
def data(workdir) -> dict[str, str]:
    """imagefolder train (6/class), validation (10/class) and test (8/class) folders."""
    return {
        f"--{split}_dir": str(write_imagefolder(workdir / "data" / split, n, seed))
        for split, n, seed in (("train", 6, 1), ("validation", 10, 2), ("test", 8, 3))
    }


@pytest.fixture(scope="module")
def saved_adapter(workdir, data, tiny_clip_dir) -> Path:
    """A training-free Tip-Adapter saved in-process with the recipe the example uses from a backbone."""
    dataset = load_image_dataset(train_dir=data["--train_dir"], cache_dir=str(workdir / "datasets"))
    model = TipAdapterForImageClassification.from_clip(str(tiny_clip_dir), NAMES)
    model.build_cache(dataset["train"], num_shots=5, augment_epochs=2, seed=3, show_progress=False)
    model.save_pretrained(workdir / "adapter")
    return workdir / "adapter"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(workdir: Path, num_processes: int, args: list[str], expect_success: bool = True):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCELERATE_")}
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    env.update(
        HF_HOME=str(workdir / "hf_home"),
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        CUDA_VISIBLE_DEVICES="",
        OMP_NUM_THREADS="1",
        TOKENIZERS_PARALLELISM="false",
    )
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_machines", "1", "--mixed_precision", "no"]
    cmd += ["--dynamo_backend", "no", "--num_processes", str(num_processes), "--num_cpu_threads_per_process", "1"]
    if num_processes > 1:
        cmd += ["--multi_gpu", "--main_process_port", str(free_port())]
    proc = subprocess.run([*cmd, str(EXAMPLE), *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=400)
    if expect_success and proc.returncode != 0:
        pytest.fail(f"accelerate launch failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


def results(out: Path) -> dict:
    return json.loads((out / "all_results.json").read_text())


def checkpoint_keys(folder: Path) -> torch.Tensor:
    """The keys a checkpoint holds (those after its last step)."""
    return load_file(folder / "training_state.safetensors")["params.cache_keys"]


def data_args(data: dict[str, str]) -> list[str]:
    return [item for pair in data.items() for item in pair]


@pytest.fixture(scope="module")
def run_two(workdir, data, tiny_clip_dir) -> Path:
    """2 gloo processes from a CLIP backbone (the training-free adapter is built first), with tracking on."""
    out = workdir / "two"
    launch(
        workdir,
        2,
        ["--model_name_or_path", str(tiny_clip_dir), *data_args(data), *COMMON, "--per_device_train_batch_size", "3"]
        + ["--output_dir", str(out), "--checkpointing_steps", "epoch", "--with_tracking"],
    )
    return out


@pytest.fixture(scope="module")
def run_one(workdir, data, saved_adapter) -> Path:
    """1 process from the saved adapter, with the same global batch (6) as `run_two`."""
    out = workdir / "one"
    launch(
        workdir,
        1,
        ["--model_name_or_path", str(saved_adapter), *data_args(data), *COMMON, "--per_device_train_batch_size", "6"]
        + ["--output_dir", str(out), "--checkpointing_steps", "epoch"],
    )
    return out


def test_two_process_run_is_real_and_its_folder_runs_in_a_pipeline(run_two, data):
    from transformers import AutoModelForImageClassification, pipeline

    res = results(run_two)
    assert res["num_processes"] == 2 and res["train_batch_size"] == 6
    assert res["keys_identical_across_processes"] is True  # every rank's keys gathered and compared
    assert [h["epoch"] for h in res["history"]] == [0, 1, 2]
    assert res["eval_split"] == "test" and res["test_accuracy"] == res["tip_adapter_f_accuracy"]
    for key in ("eval_accuracy", "zero_shot_accuracy", "tip_adapter_accuracy", "tip_adapter_f_accuracy"):
        assert 0.0 <= res[key] <= 1.0
    assert res["train_runtime"] > 0 and res["train_alpha"] == 1.0 and res["train_beta"] == 2.0
    assert sorted(p.name for p in (run_two / "checkpoints").iterdir()) == ["epoch_0", "epoch_1", "epoch_2"]

    model = AutoModelForImageClassification.from_pretrained(run_two)
    assert model.config.finetune_keys is True and isinstance(model.cache_keys, torch.nn.Parameter)
    assert (model.config.alpha, model.config.beta) == (res["alpha"], res["beta"])
    classifier = pipeline("image-classification", model=str(run_two))
    image = next(Path(data["--test_dir"]).rglob("*.png"))
    predictions = classifier(str(image))
    assert sorted(p["label"] for p in predictions) == sorted(NAMES)
    assert sum(p["score"] for p in predictions) == pytest.approx(1.0, abs=1e-5)


def test_one_and_two_processes_reach_the_same_keys(run_one, run_two):
    one, two = results(run_one), results(run_two)
    assert one["num_processes"] == 1 and one["train_batch_size"] == two["train_batch_size"] == 6
    assert [h["validation_accuracy"] for h in one["history"]] == [h["validation_accuracy"] for h in two["history"]]
    assert one["best_epoch"] == two["best_epoch"]
    for a, b in zip(one["history"], two["history"], strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
    best_one, best_two = (load_file(run / "model.safetensors")["cache_keys"] for run in (run_one, run_two))
    torch.testing.assert_close(best_one, best_two, atol=1e-5, rtol=0)
    last_one, last_two = (checkpoint_keys(run / "checkpoints" / "epoch_2") for run in (run_one, run_two))
    torch.testing.assert_close(last_one, last_two, atol=1e-5, rtol=0)
    assert (last_one - best_one).abs().max() > 1e-4 or one["best_epoch"] == 2


def test_only_the_keys_change(saved_adapter, run_one, run_two, tiny_clip_dir):
    before, after = load_file(saved_adapter / "model.safetensors"), load_file(run_one / "model.safetensors")
    assert before.keys() == after.keys()
    changed = [name for name in before if not torch.equal(before[name], after[name])]
    assert changed == ["cache_keys"]  # CLIP, the text weights and the values are bit-identical
    assert (before["cache_keys"] - after["cache_keys"]).abs().max() > 1e-4
    clip = load_file(tiny_clip_dir / "model.safetensors")
    trained = load_file(run_two / "model.safetensors")  # built from the backbone inside the 2-process run
    for name, tensor in clip.items():
        assert torch.equal(trained[f"clip.{name}"], tensor), name
    assert torch.equal(trained["cache_labels"], after["cache_labels"])
    # computed by from_clip in another process (other thread count): equal up to float rounding
    torch.testing.assert_close(trained["zero_shot_weights"], after["zero_shot_weights"], atol=1e-6, rtol=0)


def test_resume_after_a_kill_reaches_the_same_keys(workdir, data, tiny_clip_dir, run_two):
    out = workdir / "resumed"
    args = ["--model_name_or_path", str(tiny_clip_dir), *data_args(data), *COMMON, "--per_device_train_batch_size"]
    args += ["3", "--output_dir", str(out), "--checkpointing_steps", "1"]
    killed = launch(workdir, 2, [*args, "--kill_after_steps", "4"], expect_success=False)
    assert killed.returncode != 0
    assert not (out / "model.safetensors").exists()
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [f"step_{i}" for i in range(1, 5)]

    launch(workdir, 2, [*args, "--resume_from_checkpoint", "latest"])
    resumed, uninterrupted = results(out), results(run_two)
    assert resumed["resumed_from"].endswith("step_4")  # mid-epoch: the 2nd epoch's 2nd step comes next
    assert resumed["history"] == uninterrupted["history"]  # losses included, across the kill
    assert resumed["best_epoch"] == uninterrupted["best_epoch"]
    final, reference = load_file(out / "model.safetensors"), load_file(run_two / "model.safetensors")
    assert all(torch.equal(final[name], reference[name]) for name in reference)
    assert torch.equal(
        checkpoint_keys(out / "checkpoints" / f"step_{STEPS}"), checkpoint_keys(run_two / "checkpoints" / "epoch_2")
    )


def test_validation_picks_the_epoch_in_launched_runs(run_one, run_two):
    for run in (run_one, run_two):
        res = results(run)
        accuracies = [h["validation_accuracy"] for h in res["history"]]
        assert res["best_epoch"] == int(np.argmax(accuracies))  # the first best validation epoch
        assert "test_accuracy" in res and "test_accuracy" not in res["history"][0]


def test_example_refuses_an_output_dir_holding_another_run(tmp_path, data, tiny_clip_dir, capsys):
    spec = importlib.util.spec_from_file_location("finetune_example", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    (tmp_path / "config.json").write_text("{}")
    args = ["--model_name_or_path", str(tiny_clip_dir), *data_args(data), "--output_dir", str(tmp_path)]
    assert example.main(args) == 1  # a user error: one line on stderr, exit status 1
    assert re.search(r"already holds another run \(config\.json\).*--overwrite_output_dir", capsys.readouterr().err)
    assert (tmp_path / "config.json").read_text() == "{}"


# ------------------------------------------------------------------------------------------- library, in-process
@pytest.fixture
def accelerator():
    """A single-process CPU Accelerator; its global state is reset afterwards, as accelerate's own test cases do."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    yield Accelerator(cpu=True)
    AcceleratorState._reset_state(reset_partial_state=True)


def weak_dataset(per_class: int, seed: int, names: list[str] = CLASS_NAMES):
    from datasets import ClassLabel, Dataset, Features
    from datasets import Image as ImageFeature

    labels = [c for c in range(len(names)) for _ in range(per_class)]
    features = Features({"image": ImageFeature(), "label": ClassLabel(names=list(names))})
    return Dataset.from_dict({"image": weak_images(labels, seed, signal=20), "label": labels}, features=features)


def test_online_augmentation_trains_on_the_same_views_as_the_bank(adapter, accelerator):
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 2])
    images = make_images(labels.tolist(), seed=4)
    keys = {}
    for online, seed in ((False, 5), (True, 5), (False, 6)):  # the last: other views, a control for the tolerance
        model = copy.deepcopy(adapter).enable_key_finetuning()
        optimizer, scheduler = create_optimizer_and_scheduler(model, FinetuneConfig(learning_rate=0.05), 6)
        bank = None if online else encode_view_bank(accelerator, model, images, 3, seed, batch_size=4, first_view=2)
        for epoch in range(3):  # 3 steps per epoch, the last one of 1 example; views 2, 3, 4 (after the cache's)
            loss = train_epoch(
                accelerator, model, optimizer, scheduler, labels, epoch, train_batch_size=3, seed=seed,
                feature_bank=bank, images=images if online else None, encode_batch_size=2, first_view=2,
            )  # fmt: skip
            assert np.isfinite(loss)
        frozen = [name for name, p in model.named_parameters() if name != "cache_keys"]
        assert frozen and all(model.get_parameter(name).grad is None for name in frozen)
        keys[online, seed] = model.cache_keys.detach().clone()
    # equal up to the batch composition of the CLIP forwards (bank: 4 images, online: the step's slice)
    torch.testing.assert_close(keys[True, 5], keys[False, 5], atol=5e-5, rtol=0)
    assert (keys[False, 6] - keys[False, 5]).abs().max() > 1e-3
    assert (keys[False, 5] - adapter.cache_keys).abs().max() > 1e-3


def test_cache_from_the_view_bank_equals_build_cache(tiny_clip, accelerator, monkeypatch):
    """From a backbone, the training-free keys are encoded by `encode_view_bank` (views `0..E-1`, sharded): the same
    keys as `build_cache` (up to the batch composition of the CLIP forwards), which is not called. Training then
    draws views `E..E+V-1`: none of them is a view averaged into the cache."""
    from datasets import DatasetDict

    clip, processor = tiny_clip
    dataset = DatasetDict(train=weak_dataset(4, seed=7), validation=weak_dataset(2, seed=8))

    def fresh():
        return TipAdapterForImageClassification.from_clip(clip, CLASS_NAMES, processor=processor, alpha=1.0, beta=2.0)

    reference = fresh().build_cache(dataset["train"], num_shots=3, augment_epochs=2, seed=9, show_progress=False)
    model = fresh()
    monkeypatch.setattr(model, "build_cache", lambda *a, **k: pytest.fail("the cache was encoded a second time"))
    searched_keys = []  # the keys at each α/β search: the first one is the training-free adapter's
    search = model.search_hyperparameters
    monkeypatch.setattr(
        model,
        "search_hyperparameters",
        lambda *a, **k: searched_keys.append(model.cache_keys.detach().clone()) or search(*a, **k),
    )
    trained_on = []  # (first_view, bank) of each training epoch
    real_train_epoch = training.train_epoch

    def spy_train_epoch(*args, **kwargs):
        trained_on.append((kwargs["first_view"], kwargs["feature_bank"].clone()))
        return real_train_epoch(*args, **kwargs)

    monkeypatch.setattr(training, "train_epoch", spy_train_epoch)
    config = FinetuneConfig(num_shots=3, augment_epochs=2, num_augmented_views=3, seed=9, num_train_epochs=1,
                            per_device_train_batch_size=4)  # fmt: skip
    results = finetune(model, dataset, config, accelerator)
    torch.testing.assert_close(searched_keys[0], reference.cache_keys, atol=1e-6, rtol=0)
    assert torch.equal(model.cache_labels, reference.cache_labels)
    assert model.config.augment_epochs == 2 and model.config.num_shots == 3
    assert results["num_examples"] == 9 and results["first_training_view"] == 2

    # the training bank holds views 2, 3, 4 (encoded independently here: one image, view by view), not views 0, 1
    ((first_view, bank),) = trained_on
    assert first_view == 2 and bank.shape[:2] == (3, 9)
    images, _ = sample_training_set(model, dataset["train"], config)
    image = 4
    views = [encode_views(accelerator, model, images, [image], view, seed=9)[0] for view in range(5)]
    for k in range(3):
        torch.testing.assert_close(bank[k, image], views[2 + k], atol=1e-4, rtol=1e-5)
        for cache_view in views[:2]:
            assert (bank[k, image] - cache_view).abs().max() > 1e-2


def test_fine_tuning_samples_the_caches_few_shot_set_by_default(tiny_clip, accelerator):
    """A cache sampled with seed 4 is fine-tuned on the same images unless another seed is asked for (then a warning
    says the keys will train on other images)."""
    from datasets import DatasetDict

    clip, processor = tiny_clip
    dataset = DatasetDict(train=weak_dataset(4, seed=7), validation=weak_dataset(2, seed=8))

    def built():
        model = TipAdapterForImageClassification.from_clip(clip, CLASS_NAMES, processor=processor, alpha=1.0, beta=2.0)
        return model.build_cache(dataset["train"], num_shots=3, augment_epochs=1, seed=4, show_progress=False)

    common = dict(num_train_epochs=1, augment_epochs=1, per_device_train_batch_size=9)
    results = finetune(built(), dataset, FinetuneConfig(**common), accelerator)
    assert results["finetune_config"]["seed"] == 4
    with pytest.warns(UserWarning, match="seed 4, but fine-tuning samples seed 6"):
        results = finetune(built(), dataset, FinetuneConfig(seed=6, **common), accelerator)
    assert results["finetune_config"]["seed"] == 6


def test_validation_picks_the_epoch_and_test_is_read_once_at_the_end(tiny_clip, accelerator, monkeypatch):
    """Planted: on this data the validation curve peaks before the last epoch, so "last" and "best" differ."""
    from datasets import DatasetDict

    clip, processor = tiny_clip
    model = TipAdapterForImageClassification.from_clip(clip, CLASS_NAMES, processor=processor)
    dataset = DatasetDict(train=weak_dataset(6, 1), validation=weak_dataset(10, 2), test=weak_dataset(7, 3))
    events, snapshots = [], {}
    real_encode = procedure.encode_dataset  # every split encoding of a run goes through procedure.encode_split

    def spy_encode(clip, image_processor, split, *args, **kwargs):
        events.append(("encode", len(split)))
        return real_encode(clip, image_processor, split, *args, **kwargs)

    def on_step(completed: int) -> None:
        events.append(("step", completed))
        if completed % 3 == 0:  # an epoch end: its evaluation is done, its keys are final
            snapshots[completed // 3 - 1] = model.cache_keys.detach().clone()

    monkeypatch.setattr(procedure, "encode_dataset", spy_encode)
    config = FinetuneConfig(
        num_shots=5, num_train_epochs=5, augment_epochs=2, num_augmented_views=2, per_device_train_batch_size=6,
        learning_rate=0.05, alpha=1.0, beta=2.0,
    )  # fmt: skip
    res = finetune(model, dataset, config, accelerator, on_step=on_step)

    accuracies = [h["validation_accuracy"] for h in res["history"]]
    assert res["best_epoch"] == int(np.argmax(accuracies)) != 4
    assert torch.equal(model.cache_keys.detach(), snapshots[res["best_epoch"]])  # the best epoch's keys, not the last
    assert not torch.equal(model.cache_keys.detach(), snapshots[4])
    assert [e for e in events if e[0] == "encode"] == [("encode", 30), ("encode", 21)]
    assert events[0] == ("encode", 30) and events[-1] == ("encode", 21)  # validation first, test once after training
    assert model.card_data["eval_split"] == "test" and model.card_data["num_shots"] == 5
    assert set(model.card_data["results"]) == {"zero_shot_accuracy", "tip_adapter_accuracy", "tip_adapter_f_accuracy"}
    assert res["validation"]["tip_adapter_f_accuracy"] == res["eval_accuracy"]


def test_a_bfloat16_model_finetunes_and_keeps_its_dtype(adapter, image_dataset, accelerator):
    from datasets import DatasetDict

    model = copy.deepcopy(adapter).to(torch.bfloat16)  # a copy: the session's tiny CLIP stays float32
    dataset = DatasetDict(train=image_dataset, validation=image_dataset, test=image_dataset)
    config = FinetuneConfig(num_shots=2, num_train_epochs=1, num_augmented_views=1, learning_rate=0.05)
    before = model.cache_keys.detach().clone()
    results = finetune(model, dataset, config, accelerator)
    assert model.cache_keys.dtype == torch.bfloat16 and model.zero_shot_weights.dtype == torch.bfloat16
    assert results["history"][0]["train_loss"] > 0 and 0 <= results["test_accuracy"] <= 1
    assert not torch.equal(model.cache_keys.detach(), before)  # trained (the best, and only, epoch's keys)


def test_finetune_keeps_what_the_caller_registered_on_its_accelerator(adapter, image_dataset, accelerator):
    from datasets import DatasetDict

    net = torch.nn.Linear(2, 2)
    net, optimizer = accelerator.prepare(net, torch.optim.SGD(net.parameters(), lr=0.1))
    tracked = torch.optim.lr_scheduler.StepLR(optimizer, 1)
    accelerator.register_for_checkpointing(tracked)
    accelerator.step = 5
    dataset = DatasetDict(train=image_dataset, validation=image_dataset)
    config = FinetuneConfig(num_shots=2, num_train_epochs=1, num_augmented_views=1)
    for _ in range(2):  # the same accelerator runs `finetune` twice
        finetune(copy.deepcopy(adapter), dataset, config, accelerator)
        assert accelerator._optimizers == [optimizer] and accelerator._models == [net]
        assert accelerator._custom_objects == [tracked] and accelerator.step == 5


def test_alpha_must_be_positive(adapter, image_dataset, accelerator, monkeypatch):
    from datasets import DatasetDict

    with pytest.raises(ValueError, match=r"`alpha` must be a finite number > 0, got 0"):
        FinetuneConfig(alpha=0)
    with pytest.raises(ValueError, match=r"`beta` must be a finite number >= 0, got -1.0"):
        FinetuneConfig(beta=-1.0)
    assert FinetuneConfig(alpha=0.5, beta=0).beta == 0
    model = copy.deepcopy(adapter)
    model.config.alpha = 0.0
    monkeypatch.setattr(training, "encode_split", lambda *a, **k: pytest.fail("checked only after encoding"))
    dataset = DatasetDict(train=image_dataset, validation=image_dataset)
    with pytest.raises(ValueError, match=r"training alpha is 0\.0 .*`FinetuneConfig\.alpha` unset"):
        finetune(model, dataset, FinetuneConfig(num_shots=2, num_train_epochs=1), accelerator)


def test_dataset_errors_name_the_problem(adapter, image_dataset, accelerator):
    from datasets import DatasetDict

    config = FinetuneConfig(num_shots=2, num_train_epochs=1)
    with pytest.raises(ValueError, match=r"no `validation` split.*--validation_dir"):
        finetune(adapter, DatasetDict(train=image_dataset), config, accelerator)
    other = weak_dataset(3, 0, names=["red_square", "green circle", "purple dots"])
    with pytest.raises(
        ValueError, match=r"only in the dataset: \['purple dots'\]; only in the model: \['blue stripes'\]"
    ):
        finetune(adapter, DatasetDict(train=other, validation=other), config, accelerator)
    shuffled = weak_dataset(3, 0, names=CLASS_NAMES[::-1])
    # the model's classes in another order: matched by name (issue 9), the labels remapped
    assert check_dataset(adapter, DatasetDict(train=shuffled, validation=shuffled), config) == [2, 1, 0]
    two = weak_dataset(3, 0, names=CLASS_NAMES[:2])
    with pytest.raises(ValueError, match=r"`train` split has 2 classes .* the model 3"):
        finetune(adapter, DatasetDict(train=two, validation=two), config, accelerator)
    renamed = weak_dataset(3, 0, names=["r", "g", "b"])  # e.g. a preset's prompt names for folder names
    with pytest.raises(ValueError, match=r"pass the model's names as `class_names`"):
        check_dataset(adapter, DatasetDict(train=renamed, validation=renamed), config)
    check_dataset(adapter, DatasetDict(train=renamed, validation=renamed), FinetuneConfig(class_names=CLASS_NAMES))
    with pytest.raises(ValueError, match=r"`class_names` \['r', 'g', 'b'\] are not the model's classes"):
        check_dataset(adapter, DatasetDict(train=renamed, validation=renamed), FinetuneConfig(class_names=list("rgb")))
    with pytest.raises(
        ValueError, match=r"`validation` split's classes \['r', 'g', 'b'\] are not the `train` split's"
    ):
        check_dataset(adapter, DatasetDict(train=image_dataset, validation=renamed), config)
    with pytest.raises(ValueError, match=r"Column\(s\) \['img'\] not found"):
        finetune(
            adapter, DatasetDict(train=image_dataset, validation=image_dataset), FinetuneConfig(image_column="img")
        )


def test_output_dir_and_config_checks(tmp_path):
    check_output_dir(FinetuneConfig(output_dir=str(tmp_path / "new")))
    (tmp_path / "logs").mkdir()  # this run's tracker logs are not another run
    check_output_dir(FinetuneConfig(output_dir=str(tmp_path)))
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    with pytest.raises(ValueError, match=r"already holds another run \(model\.safetensors\)"):
        check_output_dir(FinetuneConfig(output_dir=str(tmp_path)))
    check_output_dir(FinetuneConfig(output_dir=str(tmp_path), overwrite_output_dir=True))
    # issue 9 item 7: resuming never replaces a saved model either (only checkpoints/ and logs/ belong to a run)
    with pytest.raises(ValueError, match=r"already holds another run \(model\.safetensors\)"):
        check_output_dir(FinetuneConfig(output_dir=str(tmp_path), resume_from_checkpoint="latest"))
    check_output_dir(
        FinetuneConfig(output_dir=str(tmp_path), resume_from_checkpoint="latest", overwrite_output_dir=True)
    )
    for kwargs, message in (
        ({"num_train_epochs": 0}, "`num_train_epochs` must be an integer >= 1"),
        ({"learning_rate": -1.0}, "`learning_rate` must be a finite number > 0"),
        (
            {"checkpointing_steps": "often", "output_dir": "x"},
            '`checkpointing_steps` must be an integer >= 1 or "epoch"',
        ),
        ({"checkpointing_steps": "epoch"}, "need an `output_dir`"),
    ):
        with pytest.raises(ValueError, match=message):
            FinetuneConfig(**kwargs)
    assert FinetuneConfig(checkpointing_steps="5", output_dir="x").checkpointing_steps == 5


def test_resume_refuses_other_settings_and_missing_checkpoints(adapter, image_dataset, accelerator, tmp_path):
    from datasets import DatasetDict

    dataset = DatasetDict(train=image_dataset, validation=image_dataset)
    kwargs = dict(num_shots=2, num_train_epochs=1, num_augmented_views=1, output_dir=str(tmp_path / "run"))
    finetune(copy.deepcopy(adapter), dataset, FinetuneConfig(checkpointing_steps="epoch", **kwargs), accelerator)
    assert (tmp_path / "run" / "checkpoints" / "epoch_0" / "trainer_state.json").is_file()
    # the finished run's folder holds its model: resuming into it needs `overwrite_output_dir` (issue 9 item 7)
    kwargs["overwrite_output_dir"] = True
    other = FinetuneConfig(learning_rate=0.5, resume_from_checkpoint="latest", **kwargs)
    with pytest.raises(ValueError, match=r"other settings.*'learning_rate': \(0\.001, 0\.5\)"):
        finetune(copy.deepcopy(adapter), dataset, other, accelerator)
    with pytest.raises(ValueError, match="not a checkpoint folder"):
        finetune(copy.deepcopy(adapter), dataset, FinetuneConfig(resume_from_checkpoint=str(tmp_path), **kwargs))
