#!/usr/bin/env python
"""Tip-Adapter-F: fine-tune the cache keys of a Tip-Adapter on a few-shot image classification dataset with Accelerate.

    accelerate launch examples/finetune.py \
        --model_name_or_path openai/clip-vit-base-patch16 \
        --dataset_name blanchon/EuroSAT_RGB --num_shots 16 --num_train_epochs 100 \
        --output_dir tip-adapter-f-eurosat

The same as `hf-tip finetune ...` (or `accelerate launch -m hf_tip.cli finetune ...`): this script is a thin wrapper
over `hf_tip.cli.finetune.main`, whose flags are the fields of `FinetuneScriptArguments` and
`hf_tip.training.args.FinetuneConfig` (`--help` lists them; a JSON or YAML file of them is accepted as the only
argument). It runs on one GPU, on several (`--multi_gpu --num_processes 4`) and on CPU processes
(`--multi_gpu --num_processes 2` without a GPU gives a 2-process gloo run).
"""

from __future__ import annotations

import sys

from hf_tip.cli.finetune import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:], program="accelerate launch examples/finetune.py"))
