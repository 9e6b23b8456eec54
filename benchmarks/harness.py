"""Shared benchmark harness: side-by-side timing, peak memory, the environment header, the ratio table and JSON.

Every benchmark measures its two contenders in the same process, interleaved (the order rotates every repeat so
neither always runs first or last), repeats, and reports the ratio of the medians. On a shared machine the absolute
times drift with the load; ratios measured side by side do not (much).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image
from transformers import CLIPConfig, CLIPModel

from hf_tip import TipAdapterConfig, TipAdapterForImageClassification

RESULTS_DIR = Path(__file__).parent / "results"


@dataclass
class Row:
    """One line of the ratio table: `ratio` of `contender` over `baseline` (see `direction` for which way is good)."""

    benchmark: str
    setting: str
    metric: str
    ratio: float
    target: float | None = None
    direction: Literal["min", "max"] = "min"  # "min": ratio >= target passes; "max": ratio <= target passes
    values: str = ""  # the measured quantities behind the ratio, for the table
    details: dict = field(default_factory=dict)

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        return self.ratio >= self.target if self.direction == "min" else self.ratio <= self.target


# ------------------------------------------------------------------------------------------------------ arguments
def base_parser(description: str) -> argparse.ArgumentParser:
    """A parser with the flags every benchmark takes: `--device`, `--threads`, `--repeats`, `--seed`, `--output_json`."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads (0: torch's default). 1 by default: on a shared machine, multi-threaded timings "
        "swing with other processes' load (a descheduled thread stalls every parallel op), 1-thread ones barely do.",
    )
    parser.add_argument("--repeats", type=int, default=5, help="Interleaved timing repeats per contender.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output_json", default=None, help="Where to write the JSON (default: benchmarks/results/).")
    return parser


def setup(args: argparse.Namespace) -> torch.device:
    """Apply `--threads` and return the `--device`, refusing `cuda` when no GPU is visible."""
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda was asked for, but torch sees no CUDA device.")
    return torch.device(args.device)


# ---------------------------------------------------------------------------------------------------------- timing
def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_interleaved(
    contenders: dict[str, Callable[[], object]], repeats: int, device: torch.device, warmup: int = 1
) -> dict[str, list[float]]:
    """Wall times (seconds) of each contender over `repeats` rounds; within a round every contender runs once, and
    the order rotates from round to round."""
    names = list(contenders)
    for _ in range(warmup):
        for name in names:
            contenders[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            synchronize(device)
            start = time.perf_counter()
            contenders[name]()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
    return times


def median(values: list[float]) -> float:
    return statistics.median(values)


def seconds(value: float) -> str:
    """A duration for the table: `0.0123 s` -> `12.3 ms`."""
    return f"{value * 1e3:.3g} ms" if value < 1 else f"{value:.3g} s"


def megabytes(value: float) -> str:
    """A byte count for the table, in MB."""
    return f"{value / 2**20:,.1f} MB"


def summary(times: list[float]) -> dict[str, float]:
    """Median, min and max of a list of seconds."""
    return {"median_s": median(times), "min_s": min(times), "max_s": max(times), "runs": len(times)}


# ---------------------------------------------------------------------------------------------------------- memory
def reset_peak_memory(device: torch.device) -> int:
    """Reset the peak-memory counter and return the current usage in bytes (GPU memory on CUDA, RSS on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        return torch.cuda.memory_allocated(device)
    with open("/proc/self/clear_refs", "w") as f:  # "5" resets the process's RSS high-water mark (Linux >= 4.0)
        f.write("5")
    return _status_bytes("VmRSS")


def peak_memory(device: torch.device) -> int:
    """Peak usage in bytes since the last `reset_peak_memory`."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device)
    return _status_bytes("VmHWM")


def _status_bytes(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{key} not found in /proc/self/status")


# ----------------------------------------------------------------------------------------------------- test models
def head_only_clip(projection_dim: int = 512, seed: int = 0) -> CLIPModel:
    """A CLIP with tiny towers but a real projection size, for benchmarks that never encode an image (search,
    cache head): only `projection_dim` and `logit_scale` matter there."""
    torch.manual_seed(seed)
    tiny = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)
    config = CLIPConfig(
        text_config={**tiny, "vocab_size": 64, "max_position_embeddings": 8},
        vision_config={**tiny, "image_size": 8, "patch_size": 4},
        projection_dim=projection_dim,
    )
    return CLIPModel(config).eval()


def random_images(count: int, size: tuple[int, int] = (320, 240), seed: int = 0) -> list[Image.Image]:
    """`count` RGB noise images of `size` (width, height), seeded: the encoders' cost does not depend on content."""
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)) for _ in range(count)]


def synthetic_features(
    num_classes: int, per_class: int, dim: int, noise: float, generator: torch.Generator, prototypes: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised features [num_classes·per_class, D] scattered around unit class prototypes [C,D] (`noise` is the
    expected norm of the perturbation), and their labels."""
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    feats = prototypes[labels] + noise / dim**0.5 * torch.randn(len(labels), dim, generator=generator)
    return torch.nn.functional.normalize(feats, dim=-1), labels


def synthetic_adapter(
    clip: CLIPModel, num_classes: int, shots: int, seed: int = 0, device: torch.device | str = "cpu"
) -> tuple[TipAdapterForImageClassification, torch.Tensor]:
    """A Tip-Adapter over `clip` with `num_classes` random text weights and a `num_classes × shots` cache of
    features clustered around them (so the α/β search has a real optimum). Returns the model and the prototypes
    [C,D] (to draw matching validation features with `synthetic_features`).

    The model is built with the constructor plus `set_cache`, not `from_clip`: encoding 1000 class names through a
    random text tower would only cost time.
    """
    dim = clip.config.projection_dim
    generator = torch.Generator().manual_seed(seed)
    prototypes = torch.nn.functional.normalize(torch.randn(num_classes, dim, generator=generator), dim=-1)
    config = TipAdapterConfig(
        clip_config=clip.config.to_dict(),
        id2label={i: f"class_{i}" for i in range(num_classes)},
        label2id={f"class_{i}": i for i in range(num_classes)},
    )
    model = TipAdapterForImageClassification(config, clip=clip).eval()
    text = prototypes + 1.2 / dim**0.5 * torch.randn(num_classes, dim, generator=generator)
    model.zero_shot_weights.copy_(torch.nn.functional.normalize(text, dim=-1))
    keys, labels = synthetic_features(num_classes, shots, dim, 0.8, generator, prototypes)
    model.set_cache(keys, labels)
    return model.to(device), prototypes


# ------------------------------------------------------------------------------------------------------- reporting
def environment(device: torch.device) -> dict[str, str | int]:
    """The machine and library versions, for the table header and the JSON."""
    import accelerate
    import datasets
    import transformers

    import hf_tip

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent
        ).stdout.strip()
    except OSError:
        commit = ""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu: {cpu}",
        "cpu_count": os.cpu_count() or 0,
        "torch_threads": torch.get_num_threads(),
        "load_average_1min": round(load, 2),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "datasets": datasets.__version__,
        "accelerate": accelerate.__version__,
        "hf_tip": hf_tip.__version__,
        "git_commit": commit,
    }


def header(env: dict) -> str:
    """Two lines naming the machine and the versions."""
    return (
        f"# {env['date']} | {env['device']} | {env['cpu_count']} CPUs, torch threads {env['torch_threads']}, "
        f"load avg {env['load_average_1min']}\n"
        f"# python {env['python']} | torch {env['torch']} | transformers {env['transformers']} | datasets "
        f"{env['datasets']} | accelerate {env['accelerate']} | hf_tip {env['hf_tip']} ({env['git_commit']})"
    )


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"


def format_table(rows: list[Row]) -> str:
    """A Markdown table: benchmark, setting, metric, ratio, target, met."""
    lines = [
        "| benchmark | setting | ratio of | measured (medians) | ratio | target | met |",
        "|---|---|---|---|---:|---:|:---:|",
    ]
    for row in rows:
        target = "—" if row.target is None else ("≥ " if row.direction == "min" else "≤ ") + _fmt(row.target)
        met = "—" if row.met is None else ("yes" if row.met else "**no**")
        lines.append(
            f"| {row.benchmark} | {row.setting} | {row.metric} | {row.values} | {_fmt(row.ratio)} | {target} | {met} |"
        )
    return "\n".join(lines)


def report(name: str, rows: list[Row], env: dict, args: argparse.Namespace, command: str | None = None) -> dict:
    """Print the header and the table, write them as JSON and return the JSON payload."""
    payload = {
        "benchmark": name,
        "command": command,
        "environment": env,
        "arguments": {k: v for k, v in vars(args).items() if k != "output_json" and not k.startswith("_")},
        "rows": [{**asdict(row), "met": row.met} for row in rows],
    }
    print(header(env))
    if command:
        print(f"# command: {command}")
    print(format_table(rows))
    path = Path(args.output_json) if args.output_json else RESULTS_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    print(f"# written: {path}")
    return payload
