"""Run every benchmark with its default sizes and print one table of ratios (also written as JSON).

    python benchmarks/run_all.py                  # a few minutes on a 2-core CPU
    python benchmarks/run_all.py --device cuda
    python benchmarks/run_all.py --quick          # tiny sizes: checks that everything runs, measures nothing
    python benchmarks/run_all.py --only search_speed memory

Each benchmark also prints its own table and writes `benchmarks/results/<name>.json`; this script writes
`benchmarks/results/all.json` (or `--output_dir`).
"""

from __future__ import annotations

import argparse
import importlib
import json
import shlex
import sys
import time
from pathlib import Path

import torch
from harness import RESULTS_DIR, Row, environment, format_table, header

BENCHMARKS = ("search_speed", "inference_overhead", "finetune_epoch", "cache_build", "memory")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (0: torch's default).")
    parser.add_argument("--quick", action="store_true", help="Tiny sizes (each benchmark's QUICK_ARGS).")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, default=list(BENCHMARKS))
    parser.add_argument("--output_dir", default=str(RESULTS_DIR))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    command = "python benchmarks/run_all.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    output_dir = Path(args.output_dir)
    started = time.perf_counter()
    payloads = {}
    for name in args.only:
        module = importlib.import_module(name)
        bench_argv = ["--device", args.device, "--threads", str(args.threads)]
        bench_argv += ["--output_json", str(output_dir / f"{name}.json")]
        payloads[name] = module.main(bench_argv + (module.QUICK_ARGS if args.quick else []))
        print()
    rows = [Row(**{k: v for k, v in row.items() if k != "met"}) for p in payloads.values() for row in p["rows"]]
    env = environment(torch.device(args.device))
    print("=" * 40, "all benchmarks", "=" * 40)
    print(header(env))
    print(f"# command: {command.strip()}  ({time.perf_counter() - started:.0f} s)")
    print(format_table(rows))
    payload = {
        "command": command.strip(),
        "environment": env,
        "wall_time_s": round(time.perf_counter() - started, 1),
        "quick": args.quick,
        "benchmarks": payloads,
    }
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "all.json").write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    print(f"# written: {output_dir / 'all.json'}")
    return payload


if __name__ == "__main__":
    main()
