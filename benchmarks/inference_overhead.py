"""Inference overhead: Tip-Adapter's forward vs the bare CLIP image forward on the same pixel batch.

For each cache size (1 / 16 / 128 shots × 1000 classes: 1k, 16k — ImageNet 16-shot — and 128k entries) a
Tip-Adapter shares one ViT-B/32-size CLIP (random weights: only the arithmetic is timed). Every round runs the bare
encoder (`features.encode_images`), each adapter's `forward(pixel_values=...)` and each adapter's head alone
(`forward(image_embeds=...)`), in rotating order. Two ratios per cache size:

* measured: median Tip-Adapter forward / median bare CLIP forward (what a user sees; noisy on a shared machine);
* from parts: 1 + median head time / median bare CLIP time (the same overhead, from the small, steadier head timing).

Each batch size (default 1, 8 and 32) is timed on its own; everything runs under `torch.inference_mode()`, as the
pipeline does.

    python benchmarks/inference_overhead.py
    python benchmarks/inference_overhead.py --shots 16 --batch_size 1 8 32 --repeats 3
    python benchmarks/inference_overhead.py --shots 16 --cache_dtype bfloat16   # keys in bf16 (`cache_dtype`)

With `--cache_dtype`, the adapters keep their keys in that precision and one more row per cache size gives the share
of 4 validation features per class (synthetic, around the class prototypes) whose top-1 equals float32 keys' top-1.
    python benchmarks/inference_overhead.py --backbone tiny --num_classes 10 --shots 1 4 --batch_size 2 --repeats 2
"""

from __future__ import annotations

import shlex
import sys

import torch
from harness import (
    Row,
    base_parser,
    environment,
    median,
    report,
    seconds,
    setup,
    summary,
    synthetic_adapter,
    synthetic_features,
    time_interleaved,
)

from hf_tip.backbones import random_clip
from hf_tip.models.features import encode_images

BENCHMARK = "inference overhead"
# (cache entries, batch size) -> the largest acceptable forward-time ratio; batch None: any batch size
TARGETS = {(16_000, 1): 1.02, (16_000, None): 1.01, (128_000, None): 1.05}
# tiny sizes for smoke tests and `run_all.py --quick`: runs in seconds, measures nothing meaningful
QUICK_ARGS = ["--backbone", "tiny", "--num_classes", "10", "--shots", "1", "16", "--batch_size", "2", "--repeats", "1"]


def parse_args(argv: list[str] | None = None):
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--backbone", choices=["tiny", "small", "vit-b-32"], default="vit-b-32")
    parser.add_argument("--num_classes", type=int, default=1000)
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 16, 128], help="Cache entries per class.")
    parser.add_argument("--batch_size", type=int, nargs="+", default=[1, 8, 32], help="Batch sizes, timed apart.")
    parser.add_argument("--cache_dtype", choices=["float32", "bfloat16", "float16"], default=None,
                        help="Precision of the cache keys (Tip-Adapter's `cache_dtype`); default: the model's.")  # fmt: skip
    parser.set_defaults(repeats=7)
    return parser.parse_args(argv)


def run(args) -> list[Row]:
    device = setup(args)
    clip, _ = random_clip(args.backbone, seed=args.seed)
    clip = clip.to(device)
    adapters, rows = {}, []
    for shots in args.shots:
        model, prototypes = synthetic_adapter(clip, args.num_classes, shots, args.seed, device)
        adapters[shots * args.num_classes] = model
        if args.cache_dtype is not None:
            rows.append(_top1_agreement(args, model, prototypes, shots))
    for batch_size in args.batch_size:
        rows += _rows_for_batch(args, clip, adapters, batch_size, device)
    return rows


def _top1_agreement(args, model, prototypes: torch.Tensor, shots: int) -> Row:
    """Switch `model` to `args.cache_dtype` keys; the share of validation top-1s unchanged from float32 keys."""
    generator = torch.Generator().manual_seed(args.seed + 1)
    embeds, _ = synthetic_features(args.num_classes, 4, prototypes.shape[1], 0.8, generator, prototypes)
    embeds = embeds.to(model.device)
    with torch.inference_mode():
        before = model(image_embeds=embeds).logits.argmax(-1)
        model.set_cache_dtype(args.cache_dtype)
        after = model(image_embeds=embeds).logits.argmax(-1)
    agree = (before == after).float().mean().item()
    setting = f"{shots * args.num_classes:,} entries, {args.num_classes} classes; keys in {args.cache_dtype}"
    return Row(BENCHMARK, setting, "top-1 agreement with float32 keys", agree, 1.0, "min", f"{len(embeds)} features")


def _rows_for_batch(args, clip, adapters: dict, batch_size: int, device) -> list[Row]:
    """Time the bare encoder, each adapter's forward and its head alone on one batch; two ratio rows per adapter."""
    size = clip.config.vision_config.image_size
    generator = torch.Generator().manual_seed(args.seed)
    pixel_values = torch.randn(batch_size, 3, size, size, generator=generator).to(device)
    with torch.inference_mode():
        image_embeds = encode_images(clip, pixel_values)

    contenders = {"clip": lambda: encode_images(clip, pixel_values)}
    for entries, model in adapters.items():
        contenders[f"tip@{entries}"] = lambda model=model: model(pixel_values=pixel_values)
        contenders[f"head@{entries}"] = lambda model=model: model(image_embeds=image_embeds)
    with torch.inference_mode():
        times = time_interleaved(contenders, args.repeats, device)
    clip_s = median(times["clip"])
    rows = []
    for entries in adapters:
        tip_s, head_s = median(times[f"tip@{entries}"]), median(times[f"head@{entries}"])
        target = TARGETS.get((entries, batch_size), TARGETS.get((entries, None)))
        keys = f", {args.cache_dtype} keys" if args.cache_dtype else ""
        setting = f"{entries:,} entries, {args.num_classes} classes{keys}; {args.backbone}, batch {batch_size}"
        details = {
            "clip": summary(times["clip"]),
            "tip_adapter": summary(times[f"tip@{entries}"]),
            "head_only": summary(times[f"head@{entries}"]),
        }
        measured = f"Tip {seconds(tip_s)} · CLIP {seconds(clip_s)}"
        parts = f"head {seconds(head_s)} · CLIP {seconds(clip_s)}"
        rows.append(Row(BENCHMARK, setting, "forward time: Tip-Adapter / CLIP", tip_s / clip_s, target, "max",
                        measured, details))  # fmt: skip
        rows.append(Row(BENCHMARK, setting, "1 + head time / CLIP time", 1 + head_s / clip_s, target, "max", parts))
    return rows


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    command = "python benchmarks/inference_overhead.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    rows = run(args)
    return report("inference_overhead", rows, environment(torch.device(args.device)), args, command.strip())


if __name__ == "__main__":
    main()
