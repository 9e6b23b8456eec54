"""Tip-Adapter-F epoch time: training on a precomputed feature bank vs re-encoding augmented views every epoch.

Both paths call `hf_tip.training.trainer.train_epoch` on the same ViT-B/32-size model (random weights: only the arithmetic
is timed), optimizer and few-shot set: the fast path with the bank of `training.encode_view_bank` (encoded once,
before the first epoch), the online path (`--online_augmentation` in `examples/finetune.py`) with the images, which
it re-augments and re-encodes at every step, as the paper's loop does. The bank's one-off cost is reported too,
with what it means for a whole run of the paper's 20 epochs.

    python benchmarks/finetune_epoch.py
    python benchmarks/finetune_epoch.py --backbone tiny --num_classes 3 --num_shots 2 --repeats 1
"""

from __future__ import annotations

import itertools
import shlex
import sys
import time

import torch
from accelerate import Accelerator
from harness import Row, base_parser, environment, random_images, report, seconds, setup, summary, time_interleaved

from hf_tip import TipAdapterForImageClassification
from hf_tip.backbones import random_clip
from hf_tip.training.trainer import (
    FinetuneConfig,
    create_optimizer_and_scheduler,
    encode_view_bank,
    train_epoch,
)

TARGET = 20.0
# tiny sizes for smoke tests and `run_all.py --quick`: runs in seconds, measures nothing meaningful
QUICK_ARGS = ["--backbone", "tiny", "--num_classes", "3", "--num_shots", "2", "--repeats", "1"]


def parse_args(argv: list[str] | None = None):
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--backbone", choices=["tiny", "small", "vit-b-32"], default="vit-b-32")
    parser.add_argument("--num_classes", type=int, default=10)
    parser.add_argument("--num_shots", type=int, default=4)
    parser.add_argument("--num_views", type=int, default=2, help="Augmented views in the feature bank.")
    parser.add_argument("--paper_epochs", type=int, default=20, help="Epochs of the whole-run estimate.")
    parser.add_argument("--paper_views", type=int, default=10, help="Bank views of the whole-run estimate.")
    parser.add_argument("--train_batch_size", type=int, default=256)
    parser.add_argument("--encode_batch_size", type=int, default=32)
    parser.set_defaults(repeats=3)
    return parser.parse_args(argv)


def run(args) -> list[Row]:
    device = setup(args)
    clip, processor = random_clip(args.backbone, seed=args.seed)
    class_names = [f"class {i}" for i in range(args.num_classes)]
    model = TipAdapterForImageClassification.from_clip(clip, class_names, processor=processor).to(device)
    labels = torch.arange(args.num_classes).repeat_interleave(args.num_shots)
    images = random_images(len(labels), seed=args.seed)
    keys = torch.randn(len(labels), clip.config.projection_dim, generator=torch.Generator().manual_seed(args.seed))
    model.set_cache(keys, labels).enable_key_finetuning()

    accelerator = Accelerator(cpu=device.type == "cpu")
    config = FinetuneConfig(per_device_train_batch_size=args.train_batch_size, num_train_epochs=1000)
    steps_per_epoch = -(-len(labels) // args.train_batch_size)
    optimizer, scheduler = create_optimizer_and_scheduler(model, config, 1000 * steps_per_epoch)
    optimizer = accelerator.prepare(optimizer)

    started = time.perf_counter()
    bank = encode_view_bank(accelerator, model, images, args.num_views, args.seed, args.encode_batch_size)
    bank_s = time.perf_counter() - started
    epochs = itertools.count()  # every call is a new epoch (a new order, and online, new views)
    common = dict(train_batch_size=args.train_batch_size, seed=args.seed, encode_batch_size=args.encode_batch_size)

    def fast() -> None:
        train_epoch(accelerator, model, optimizer, scheduler, labels, next(epochs), feature_bank=bank, **common)

    def online() -> None:
        train_epoch(accelerator, model, optimizer, scheduler, labels, next(epochs), images=images, **common)

    times = time_interleaved({"feature bank": fast, "online": online}, args.repeats, device)
    fast_s, online_s = summary(times["feature bank"]), summary(times["online"])
    epoch_ratio = online_s["median_s"] / fast_s["median_s"]
    # a whole run: the bank of `paper_views` views costs `paper_views / num_views` times the bank measured here
    paper_bank_s = bank_s * args.paper_views / args.num_views
    run_online = args.paper_epochs * online_s["median_s"]
    run_fast = paper_bank_s + args.paper_epochs * fast_s["median_s"]
    setting = f"{args.num_classes} classes × {args.num_shots} shots, {args.backbone}, bank of {args.num_views} views"
    details = {"feature_bank_epoch": fast_s, "online_epoch": online_s, "bank_build_s": round(bank_s, 4)}
    return [
        Row(
            benchmark="Tip-Adapter-F",
            setting=setting,
            metric="epoch time: online / feature bank",
            ratio=epoch_ratio,
            target=TARGET if args.backbone == "vit-b-32" else None,  # defined for ViT-B/32
            direction="min",
            values=f"bank {seconds(fast_s['median_s'])} · online {seconds(online_s['median_s'])}",
            details=details,
        ),
        Row(
            benchmark="Tip-Adapter-F",
            setting=f"whole run: {args.paper_epochs} epochs, bank of {args.paper_views} views (built once)",
            metric="run time: online / (bank build + epochs)",
            ratio=run_online / run_fast,
            values=f"bank+epochs {seconds(run_fast)} · online {seconds(run_online)} (from the rows above)",
            details={"bank_build_s": round(paper_bank_s, 4), "online_s": round(run_online, 4)},
        ),
    ]


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    command = "python benchmarks/finetune_epoch.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    rows = run(args)
    return report("finetune_epoch", rows, environment(torch.device(args.device)), args, command.strip())


if __name__ == "__main__":
    main()
