"""`hf-tip finetune` as users run it: `accelerate launch -m hf_tip.cli finetune ...` (real launches, gloo CPU
processes), flags from dataclasses (or a JSON / YAML file), user errors as one line on every process, secrets
never written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_finetune import free_port, write_imagefolder

from hf_tip.cli.finetune import parse_args
from hf_tip.training.args import FinetuneConfig

REPO = Path(__file__).resolve().parents[1]
TOKEN = "hf_" + "Ab3" * 12  # shaped like a Hub token


def launch_module(workdir: Path, num_processes: int, args: list[str], timeout: int = 240):
    """`accelerate launch [--multi_gpu] -m hf_tip.cli finetune ARGS` with the environment of test_finetune's launcher."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCELERATE_")}
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    env.update(HF_HOME=str(workdir / "hf_home"), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", CUDA_VISIBLE_DEVICES="",
               OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", PYTHONPATH=str(REPO))  # fmt: skip
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_machines", "1", "--mixed_precision", "no"]
    cmd += ["--dynamo_backend", "no", "--num_processes", str(num_processes), "--num_cpu_threads_per_process", "1"]
    if num_processes > 1:
        cmd += ["--multi_gpu", "--main_process_port", str(free_port())]
    cmd += ["-m", "hf_tip.cli", "finetune", *args]
    return subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("finetune-cli")
    return {
        f"--{split}_dir": str(write_imagefolder(root / split, n, seed))
        for split, n, seed in (("train", 3, 1), ("validation", 3, 2))
    }


def flags(folders: dict[str, str]) -> list[str]:
    return [item for pair in folders.items() for item in pair]


def test_flags_and_config_files_give_the_same_run(tmp_path):
    argv = ["--model_name_or_path", "m", "--train_dir", "t", "--output_dir", "o", "--optimizer", "sgd",
            "--checkpointing_steps", "2", "--class_names", "a", "b"]  # fmt: skip
    from_flags = parse_args(argv)
    values = {"model_name_or_path": "m", "train_dir": "t", "output_dir": "o", "optimizer": "sgd",
              "checkpointing_steps": "2", "class_names": ["a", "b"]}  # fmt: skip
    (tmp_path / "run.json").write_text(json.dumps(values))
    (tmp_path / "run.yaml").write_text("\n".join(f"{k}: {json.dumps(v)}" for k, v in values.items()))
    assert parse_args([str(tmp_path / "run.json")]) == from_flags == parse_args([str(tmp_path / "run.yaml")])
    assert isinstance(from_flags[1], FinetuneConfig) and from_flags[1].checkpointing_steps == 2
    (tmp_path / "bad.json").write_text(json.dumps({**values, "learning_rat": 1.0}))
    with pytest.raises(ValueError, match="learning_rat"):
        parse_args([str(tmp_path / "bad.json")])


def test_a_user_error_on_two_processes_is_one_line_and_never_replaces_a_model(tmp_path, folders, tiny_clip_dir):
    """Resuming into a folder that holds another saved model (issue 9 item 7), under a 2-process launch: one clear
    message, a non-zero exit, no hang, no traceback from hf-tip, and the model's files untouched."""
    out = tmp_path / "saved-model"
    out.mkdir()
    (out / "config.json").write_text('{"model_type": "tip_adapter"}')
    (out / "model.safetensors").write_bytes(b"the user's weights")
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    args = ["--model_name_or_path", str(tiny_clip_dir), *flags(folders), "--output_dir", str(out)]
    proc = launch_module(tmp_path, 2, [*args, "--resume_from_checkpoint", str(checkpoint)], timeout=180)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("hf-tip finetune: error")]
    assert len(errors) == 1, proc.stderr[-4000:]
    assert "already holds another run (config.json, model.safetensors)" in errors[0]
    assert "--overwrite_output_dir" in errors[0]
    assert 'File "' + str(REPO / "hf_tip") not in proc.stderr  # no traceback through hf-tip's code
    assert (out / "model.safetensors").read_bytes() == b"the user's weights"
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]


def test_module_launch_trains_and_records_no_token(tmp_path, folders, tiny_clip_dir):
    """`accelerate launch -m hf_tip.cli finetune` runs a real (tiny) run; `--hub_token` never reaches a file."""
    out = tmp_path / "run"
    args = ["--model_name_or_path", str(tiny_clip_dir), *flags(folders), "--output_dir", str(out), "--num_shots", "2",
            "--num_train_epochs", "1", "--augment_epochs", "1", "--num_augmented_views", "1", "--alpha", "1.0",
            "--checkpointing_steps", "epoch", "--hub_token", TOKEN, "--encode_batch_size", "16"]  # fmt: skip
    proc = launch_module(tmp_path, 1, args)
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads((out / "all_results.json").read_text())
    assert results["num_processes"] == 1 and results["best_epoch"] == 0
    assert "--hub_token '<redacted>'" in results["finetune_config"]["command"] or "<redacted>" in json.dumps(results)
    written = [p for p in out.rglob("*") if p.is_file()]
    assert any(p.name == "README.md" for p in written) and any(p.suffix == ".safetensors" for p in written)
    for path in written:
        assert TOKEN.encode() not in path.read_bytes(), path
    assert TOKEN not in proc.stdout + proc.stderr
