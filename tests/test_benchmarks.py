"""Smoke tests of benchmarks/: each runs at tiny sizes and reports a consistent table and JSON (never speed)."""

from __future__ import annotations

import importlib
import json
import math
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS_DIR = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS_DIR))

harness = importlib.import_module("harness")
NAMES = ("search_speed", "inference_overhead", "finetune_epoch", "cache_build", "memory")


def run_quick(name: str, tmp_path: Path) -> dict:
    module = importlib.import_module(name)
    out = tmp_path / f"{name}.json"
    payload = module.main([*module.QUICK_ARGS, "--threads", "0", "--output_json", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(payload)), "the JSON is what main returned"
    return payload


def check_payload(payload: dict, name: str) -> None:
    assert payload["benchmark"] == name
    env = payload["environment"]
    for key in ("device", "torch", "transformers", "hf_tip", "cpu_count", "torch_threads"):
        assert env[key] not in (None, "")
    assert payload["rows"], "at least one row"
    for row in payload["rows"]:
        assert math.isfinite(row["ratio"]) and row["ratio"] > 0
        assert row["setting"] and row["metric"] and row["values"]
        if row["target"] is None:
            assert row["met"] is None
        else:
            passes = row["ratio"] >= row["target"] if row["direction"] == "min" else row["ratio"] <= row["target"]
            assert row["met"] is passes


def test_search_speed(tmp_path):
    payload = run_quick("search_speed", tmp_path)
    check_payload(payload, "search_speed")
    (row,) = payload["rows"]
    details = row["details"]
    assert details["same_choice"] is True
    assert row["ratio"] == pytest.approx(details["reference"]["median_s"] / details["hf_tip"]["median_s"], rel=1e-3)
    assert row["target"] is None, "the ≥ 50× target is defined for the paper's 200 × 20 grid only"
    from hf_tip.models.search import search_grid

    betas, alphas = search_grid((7.0, 3.0), (20, 5))
    assert details["beta"] in betas and details["alpha"] in alphas


def test_inference_overhead(tmp_path):
    payload = run_quick("inference_overhead", tmp_path)
    check_payload(payload, "inference_overhead")
    rows = payload["rows"]
    assert [r["setting"].split(" entries")[0] for r in rows] == ["10", "10", "160", "160"]
    measured, parts = rows[0], rows[1]
    times = measured["details"]
    assert measured["ratio"] == pytest.approx(times["tip_adapter"]["median_s"] / times["clip"]["median_s"], rel=1e-3)
    assert parts["ratio"] == pytest.approx(1 + times["head_only"]["median_s"] / times["clip"]["median_s"], rel=1e-3)
    assert parts["ratio"] > 1


def test_finetune_epoch(tmp_path):
    payload = run_quick("finetune_epoch", tmp_path)
    check_payload(payload, "finetune_epoch")
    epoch, whole = payload["rows"]
    times = epoch["details"]
    assert epoch["ratio"] == pytest.approx(
        times["online_epoch"]["median_s"] / times["feature_bank_epoch"]["median_s"], rel=1e-3
    )
    assert times["bank_build_s"] > 0 and whole["target"] is None


def test_cache_build(tmp_path):
    payload = run_quick("cache_build", tmp_path)
    check_payload(payload, "cache_build")
    (row,) = payload["rows"]
    assert row["details"]["views"] == 6 * 2
    assert row["ratio"] == pytest.approx(
        row["details"]["encoder"]["median_s"] / row["details"]["build_cache"]["median_s"]
    )


def test_memory(tmp_path):
    payload = run_quick("memory", tmp_path)
    check_payload(payload, "memory")
    forward_memory, forward_time, search = payload["rows"]
    entries, num_classes, dim = 64, 8, 32
    fast, dense = forward_memory["details"]["forward_index_add"], forward_memory["details"]["forward_dense"]
    assert fast["state_bytes"] == entries * dim * 4 + entries * 8, "keys fp32 [NK,D] + labels int64 [NK]"
    assert dense["state_bytes"] == fast["state_bytes"] + entries * num_classes * 4, "+ one-hot values fp32 [NK,C]"
    for peaks in (forward_memory["details"], search["details"]):
        assert all(p["peak_bytes"] >= 0 for p in peaks.values())
    assert forward_time["ratio"] > 0


def test_dense_forward_matches_the_model(tiny_clip):
    """The dense one-hot head the memory benchmark compares against computes the same logits."""
    memory = importlib.import_module("memory")
    model, _ = harness.synthetic_adapter(harness.head_only_clip(24), num_classes=5, shots=3, seed=0)
    model.config.alpha, model.config.beta = 2.0, 3.0
    queries = torch.nn.functional.normalize(torch.randn(4, 24), dim=-1)
    values = torch.nn.functional.one_hot(model.cache_labels, 5).float()
    with torch.no_grad():
        torch.testing.assert_close(memory.dense_forward(model, queries, values), model(image_embeds=queries).logits)


def test_time_interleaved_rotates_the_order():
    calls = []
    contenders = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    times = harness.time_interleaved(contenders, repeats=3, device=torch.device("cpu"), warmup=0)
    assert calls == list("abc") + list("bca") + list("cab")
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3, "c": 3}


def test_rows_and_table():
    good = harness.Row("x", "s", "m", 60.0, target=50.0, direction="min", values="v")
    bad = harness.Row("x", "s", "m", 1.2, target=1.05, direction="max", values="v")
    assert good.met is True and bad.met is False and harness.Row("x", "s", "m", 1.0).met is None
    table = harness.format_table([good, bad])
    assert "≥ 50.0" in table and "≤ 1.050" in table and "**no**" in table and table.count("\n") == 3


def test_run_all_quick(tmp_path):
    run_all = importlib.import_module("run_all")
    payload = run_all.main(
        ["--quick", "--threads", "0", "--only", "search_speed", "cache_build", "--output_dir", str(tmp_path)]
    )
    stored = json.loads((tmp_path / "all.json").read_text())
    assert stored["quick"] is True and set(stored["benchmarks"]) == {"search_speed", "cache_build"}
    assert stored["environment"]["hf_tip"] and payload["command"].startswith("python benchmarks/run_all.py")
    assert (tmp_path / "search_speed.json").is_file() and (tmp_path / "cache_build.json").is_file()


@pytest.mark.parametrize("name", NAMES)
def test_each_benchmark_has_quick_args_and_a_main(name):
    module = importlib.import_module(name)
    assert isinstance(module.QUICK_ARGS, list) and callable(module.main)
    assert module.parse_args(module.QUICK_ARGS).device == "cpu"
