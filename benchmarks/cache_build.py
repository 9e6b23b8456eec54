"""Cache build throughput: `model.build_cache` vs the raw image encoder on the same number of views.

`build_cache` draws `augment_epochs` augmented views of every image (random resized crop + flip, PIL, on a worker
thread while the previous batch is encoded), encodes them and averages. The raw encoder (`features.encode_images`)
gets the same views as pre-made pixel batches (augmented and stacked before the clock starts, in the same tensor
layout), so raw time / build time is the fraction of the encoder's throughput that the cache build keeps: 1.0 means
augmentation and bookkeeping are fully hidden behind encoding.

    python benchmarks/cache_build.py
    python benchmarks/cache_build.py --backbone tiny --num_images 8 --augment_epochs 2 --repeats 1
"""

from __future__ import annotations

import shlex
import sys

import torch
from harness import (
    Row,
    base_parser,
    environment,
    random_images,
    report,
    setup,
    summary,
    synthetic_adapter,
    time_interleaved,
)

from hf_tip.backbones import random_clip
from hf_tip.models.features import encode_images, view_generator
from hf_tip.models.images import augment, to_pixel_values

TARGET = 0.9
# tiny sizes for smoke tests and `run_all.py --quick`: runs in seconds, measures nothing meaningful
QUICK_ARGS = [
    "--backbone",
    "tiny",
    "--num_images",
    "6",
    "--augment_epochs",
    "2",
    "--batch_size",
    "4",
    "--repeats",
    "1",
]


def parse_args(argv: list[str] | None = None):
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--backbone", choices=["tiny", "small", "vit-b-32"], default="vit-b-32")
    parser.add_argument("--num_images", type=int, default=32, help="Few-shot images in the cache.")
    parser.add_argument("--augment_epochs", type=int, default=2, help="Augmented views per image.")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--image_size", type=int, nargs=2, default=(320, 240), metavar=("WIDTH", "HEIGHT"))
    parser.set_defaults(repeats=3)
    return parser.parse_args(argv)


def run(args) -> list[Row]:
    device = setup(args)
    clip, processor = random_clip(args.backbone, seed=args.seed)
    num_classes = min(10, args.num_images)
    model, _ = synthetic_adapter(clip, num_classes, 1, args.seed, device)
    model.processor = processor  # build_cache takes the crop size, mean and std from it
    images = random_images(args.num_images, tuple(args.image_size), args.seed)
    labels = [i % num_classes for i in range(args.num_images)]
    size, mean, std = model.image_geometry()
    batches = [
        to_pixel_values(
            [augment(images[i], size, view_generator(args.seed, epoch, i)) for i in range(start, stop)], mean, std
        )
        for epoch in range(args.augment_epochs)
        for start in range(0, args.num_images, args.batch_size)
        for stop in [min(start + args.batch_size, args.num_images)]
    ]  # what build_cache encodes (the same views, batches and tensor layout), made before the clock starts

    def build() -> None:
        model.build_cache(
            images, labels, augment_epochs=args.augment_epochs, batch_size=args.batch_size, show_progress=False
        )

    def raw() -> None:
        with torch.no_grad():
            for pixel_values in batches:
                encode_images(clip, pixel_values)

    with torch.no_grad():
        encode_images(clip, batches[0][:1])  # warm-up, cheaper than a full run of each
    times = time_interleaved({"build_cache": build, "encoder": raw}, args.repeats, device, warmup=0)
    build_s, raw_s = summary(times["build_cache"]), summary(times["encoder"])
    views = args.num_images * args.augment_epochs
    setting = (
        f"{args.num_images} images ({args.image_size[0]}×{args.image_size[1]}) × {args.augment_epochs} views, "
        f"{args.backbone}, batch {args.batch_size}"
    )
    return [
        Row(
            benchmark="cache build",
            setting=setting,
            metric="throughput: build_cache / raw encoder",
            ratio=raw_s["median_s"] / build_s["median_s"],
            target=TARGET if args.backbone == "vit-b-32" else None,  # defined for ViT-B/32
            direction="min",
            values=f"build {views / build_s['median_s']:.1f} · encoder {views / raw_s['median_s']:.1f} views/s",
            details={"build_cache": build_s, "encoder": raw_s, "views": views},
        )
    ]


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    command = "python benchmarks/cache_build.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    rows = run(args)
    return report("cache_build", rows, environment(torch.device(args.device)), args, command.strip())


if __name__ == "__main__":
    main()
