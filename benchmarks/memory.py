"""Peak memory of the forward and of the α/β search as the cache grows; dense one-hot values vs class indices.

hf-tip stores the cache values `L` [NK,C] as the class index of each key and computes `· L` as a scatter-add
(`cache.cache_logits`), so the forward needs O(B·NK) temporaries and no [NK,C] matrix; the reference code keeps `L`
as a dense one-hot matrix (512 MB for 128k entries × 1000 classes, fp32) and multiplies by it. The search
(`search.grid_search`) chunks the validation rows so that no intermediate holds more than `max_elements` = 2^25
values (128 MB fp32), whatever the number of validation rows; the paper's loop holds the full [N,NK] affinity, its
exp and the dense `L` at once.

Each peak is measured in a fresh subprocess (RSS high-water mark on CPU, reset just before the measured call;
`torch.cuda.max_memory_allocated` on GPU) and is the growth over what the process held before the call. The cache
itself (keys [NK,D], labels [NK], and for the dense variant `L`) is the model's state: its exact size is added to
the forward's peak. The search's inputs are not counted. Forward times are measured side by side in this process.

    python benchmarks/memory.py
    python benchmarks/memory.py --cache_sizes 64 256 --num_classes 8 --num_val 64 --batch_size 4 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys

import torch
from harness import (
    Row,
    base_parser,
    environment,
    head_only_clip,
    megabytes,
    peak_memory,
    report,
    reset_peak_memory,
    seconds,
    setup,
    summary,
    synthetic_adapter,
    synthetic_features,
    time_interleaved,
)

from hf_tip.models.cache import affinity, normalize, one_hot_values, zero_shot_logits
from hf_tip.testing_utils import reference_grid_search

# tiny sizes for smoke tests and `run_all.py --quick`: runs in seconds, measures nothing meaningful
QUICK_ARGS = [
    "--cache_sizes",
    "64",
    "--num_classes",
    "8",
    "--dim",
    "32",
    "--num_val",
    "32",
    "--batch_size",
    "4",
    "--repeats",
    "1",
]


def parse_args(argv: list[str] | None = None):
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--cache_sizes", type=int, nargs="+", default=[1_000, 16_000, 128_000])
    parser.add_argument("--num_classes", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--batch_size", type=int, default=32, help="Images per forward.")
    parser.add_argument("--num_val", type=int, default=1000, help="Validation rows searched over.")
    parser.add_argument(
        "--search_step",
        type=int,
        nargs=2,
        default=(2, 20),
        metavar=("N_BETA", "N_ALPHA"),
        help="hf-tip's grid; its peak does not depend on N_BETA (the reference loop runs one (β, α) pair: each pair "
        "allocates the same).",
    )
    parser.add_argument("--_child", default=None, help=argparse.SUPPRESS)  # internal: one measurement, as JSON
    parser.set_defaults(repeats=5)
    return parser.parse_args(argv)


# ------------------------------------------------------------------------------------------------ what is measured
def dense_forward(model, image_embeds: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """The reference code's head, for comparison: the same Tip logits [B,C], with the cache values as a dense
    one-hot matrix `values` [NK,C] and a matmul."""
    embeds = normalize(image_embeds)
    weights = torch.exp(-model.config.beta * (1.0 - affinity(embeds, model.cache_keys)))  # [B,NK]
    clip = zero_shot_logits(embeds, model.zero_shot_weights, model.clip.logit_scale.exp())
    return clip + model.config.alpha * (weights @ values)  # [B,NK] @ [NK,C] -> [B,C]


def _problem(spec: dict, device: torch.device):
    """The model (NK = `cache_size` entries), query features [B,D] and validation features/labels of a setting."""
    shots = max(1, spec["cache_size"] // spec["num_classes"])
    model, prototypes = synthetic_adapter(
        head_only_clip(spec["dim"]), spec["num_classes"], shots, spec["seed"], device
    )
    model.config.alpha, model.config.beta = 1.5, 5.0
    generator = torch.Generator().manual_seed(spec["seed"] + 1)
    per_class = max(1, spec["num_val"] // spec["num_classes"])
    val = synthetic_features(spec["num_classes"], per_class, spec["dim"], 1.0, generator, prototypes)
    queries = normalize(torch.randn(spec["batch_size"], spec["dim"], generator=generator))
    return model, queries.to(device), (val[0].to(device), val[1].to(device))


def measure_peak(spec: dict) -> dict:
    """In this (fresh) process: the peak memory growth of one call, and the exact size of the cache state."""
    device = torch.device(spec["device"])
    if spec["threads"] > 0:
        torch.set_num_threads(spec["threads"])
    model, queries, (val_embeds, val_labels) = _problem(spec, device)
    state = model.cache_keys.nbytes + model.cache_labels.nbytes
    values = None
    if spec["variant"] == "dense":
        values = one_hot_values(model.cache_labels, model.num_classes)
        state += values.nbytes
    with torch.no_grad():
        before = reset_peak_memory(device)
        if spec["kind"] == "forward" and spec["variant"] == "index_add":
            model(image_embeds=queries)
        elif spec["kind"] == "forward":
            dense_forward(model, queries, values)
        elif spec["variant"] == "hf-tip":
            model.search_hyperparameters(val_embeds, val_labels, search_step=tuple(spec["search_step"]))
        else:
            reference_grid_search(
                val_embeds, val_labels, model.zero_shot_weights, model.cache_keys, model.cache_labels,
                model.clip.logit_scale.exp(), search_step=(1, 1),
            )  # fmt: skip
        peak = peak_memory(device) - before
    return {"peak_bytes": max(peak, 0), "state_bytes": state}


def peak_in_subprocess(spec: dict) -> dict:
    """`measure_peak(spec)` in a fresh Python process (a clean high-water mark)."""
    done = subprocess.run(
        [sys.executable, __file__, "--_child", json.dumps(spec)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"Memory measurement {spec} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------------------------ run
def run(args) -> list[Row]:
    device = setup(args)
    rows = []
    for cache_size in args.cache_sizes:
        spec = {
            "cache_size": cache_size, "num_classes": args.num_classes, "dim": args.dim, "seed": args.seed,
            "batch_size": args.batch_size, "num_val": args.num_val, "search_step": list(args.search_step),
            "device": args.device, "threads": args.threads,
        }  # fmt: skip
        peaks = {
            (kind, variant): peak_in_subprocess({**spec, "kind": kind, "variant": variant})
            for kind, variants in (("forward", ("index_add", "dense")), ("search", ("hf-tip", "reference")))
            for variant in variants
        }
        model, queries, _ = _problem(spec, device)
        values = one_hot_values(model.cache_labels, model.num_classes)
        with torch.no_grad():
            fast_logits, dense_logits = model(image_embeds=queries).logits, dense_forward(model, queries, values)
            if not torch.allclose(fast_logits, dense_logits, rtol=1e-4, atol=1e-4):
                raise AssertionError("The dense and the index_add forward disagree.")
            contenders = {
                "index_add": lambda model=model, queries=queries: model(image_embeds=queries),
                "dense": lambda model=model, queries=queries, values=values: dense_forward(model, queries, values),
            }
            times = time_interleaved(contenders, args.repeats, device)
        entries = f"{model_entries(cache_size, args.num_classes):,} entries, {args.num_classes} classes"
        fwd = {
            v: peaks[("forward", v)]["peak_bytes"] + peaks[("forward", v)]["state_bytes"]
            for v in ("index_add", "dense")
        }
        fast_s, dense_s = summary(times["index_add"]), summary(times["dense"])
        search = {v: peaks[("search", v)]["peak_bytes"] for v in ("hf-tip", "reference")}
        rows += [
            Row(
                "memory", f"forward, {entries}, batch {args.batch_size}", "cache + peak: dense L / index_add",
                fwd["dense"] / max(fwd["index_add"], 1),
                values=f"index_add {megabytes(fwd['index_add'])} · dense {megabytes(fwd['dense'])}",
                details={f"forward_{v}": peaks[("forward", v)] for v in ("index_add", "dense")},
            ),
            Row(
                "memory", f"forward, {entries}, batch {args.batch_size}", "head time: dense L / index_add",
                dense_s["median_s"] / fast_s["median_s"],
                values=f"index_add {seconds(fast_s['median_s'])} · dense {seconds(dense_s['median_s'])}",
                details={"index_add": fast_s, "dense": dense_s},
            ),
            Row(
                "memory", f"search, {entries}, {args.num_val} val", "search peak: reference / hf-tip (chunked)",
                search["reference"] / max(search["hf-tip"], 1),
                values=f"hf-tip {megabytes(search['hf-tip'])} · reference {megabytes(search['reference'])}",
                details={f"search_{v}": peaks[("search", v)] for v in ("hf-tip", "reference")},
            ),
        ]  # fmt: skip
    return rows


def model_entries(cache_size: int, num_classes: int) -> int:
    """The cache size a setting really gets: whole shots per class."""
    return max(1, cache_size // num_classes) * num_classes


def main(argv: list[str] | None = None) -> dict | None:
    args = parse_args(argv)
    if args._child is not None:
        print(json.dumps(measure_peak(json.loads(args._child))))
        return None
    command = "python benchmarks/memory.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    rows = run(args)
    return report("memory", rows, environment(torch.device(args.device)), args, command.strip())


if __name__ == "__main__":
    main()
