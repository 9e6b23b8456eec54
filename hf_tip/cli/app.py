"""`hf-tip app MODEL_OR_REPO [--port N] [--validation_dir DIR] [--export_space DIR]`: the interactive page of
`hf_tip.app.server` (needs `pip install hf-tip[app]`), or, with `--export_space`, a folder ready to be a Hugging Face Space
(`app.py`, `requirements.txt`, a README with Space metadata, the model and hf_tip itself) that runs the same page."""

from __future__ import annotations

import argparse
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

HELP = "Serve an interactive page (Gradio): classify, see the cache examples behind it, add examples live."

GRADIO_PIN = "gradio==6.31.0"
SPACE_REQUIREMENTS = [
    GRADIO_PIN,
    "torch>=2.4",
    "transformers>=5.0",
    "safetensors>=0.4",
    "huggingface_hub>=1.0",
    "datasets>=3.0",
    "pillow>=10.0",
    "numpy>=1.26",
    "tqdm>=4.66",
]
SPACE_APP = '''"""A Hugging Face Space running the hf-tip app (exported by `hf-tip app MODEL --export_space DIR`)."""

from hf_tip.cli.app import serve

serve("model", validation_dir={validation!r}, title={title!r})
'''
SPACE_README = """---
title: Tip-Adapter app
emoji: 🔎
colorFrom: indigo
colorTo: green
sdk: gradio
sdk_version: {gradio_version}
app_file: app.py
pinned: false
license: apache-2.0
tags:
  - tip-adapter
  - few-shot
  - image-classification
---

# {title}

A few-shot image classifier (hf-tip: Tip-Adapter over a CLIP-family backbone). Upload an image to see its top classes
beside zero-shot CLIP and the labelled examples that drove the decision; add examples or classes from the page.
{note}
Run it locally with `pip install -r requirements.txt && python app.py`.
"""


@dataclass
class AppArguments:
    """Where the page is served, or the Space folder it is exported to."""

    _argument_group_name: ClassVar[str] = "app"

    port: int | None = field(
        default=None, metadata={"help": "The port to serve on (unset: 7860 or $GRADIO_SERVER_PORT)."}
    )
    host: str | None = field(default=None, metadata={"help": "The address to serve on (unset: 127.0.0.1)."})
    validation_dir: str | None = field(
        default=None, metadata={"help": "An image folder of validation data: shows alpha/beta sliders."}
    )
    export_space: str | None = field(
        default=None, metadata={"help": "Write a Space-ready folder here instead of serving."}
    )
    overwrite_output_dir: bool = field(default=False, metadata={"help": "Export into a non-empty folder."})


ARGUMENTS = (AppArguments,)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="A saved hf-tip model: a folder or a Hub repo id.")


def run(args: AppArguments, positional: argparse.Namespace, *, argv: list[str]) -> int:
    from . import fail

    try:
        if args.export_space:
            folder = export_space(positional.model, args.export_space, args.validation_dir, args.overwrite_output_dir)
            print(f"Wrote a Space folder to {folder}; run it with `cd {folder} && python app.py`.")
            return 0
        serve(positional.model, args.validation_dir, port=args.port, host=args.host)
    except ImportError as error:  # no Gradio: one line, as for other user errors (ValueError, OSError: hf_tip.cli)
        return fail("app", error)
    return 0


def _require_gradio():
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio
    except ImportError as error:
        raise ImportError("The app needs Gradio: `pip install hf-tip[app]` (or `pip install gradio`).") from error
    return gradio


def load_session(model_name_or_path: str, validation_dir: str | None = None):
    """An `AppSession` over a saved model (any hf-tip method), with encoded validation data when given."""
    import torch
    from transformers import AutoConfig, AutoModelForImageClassification

    import hf_tip  # noqa: F401  (registers the Auto classes)

    from ..app.server import AppSession
    from .evaluate import load_model

    try:
        model_type = AutoConfig.from_pretrained(model_name_or_path).model_type
    except (OSError, ValueError) as error:
        raise ValueError(f"{model_name_or_path!r} holds no hf-tip model (no loadable config.json): {error}") from None
    if model_type == "tip-adapter":
        model = load_model(model_name_or_path)
    else:  # another hf-tip method, through the Auto classes that hf_tip registers
        model = AutoModelForImageClassification.from_pretrained(model_name_or_path)
    validation = None
    if validation_dir is not None:
        from ..data.loading import load_image_dataset
        from ..pipeline.encoding import encode_dataset

        split = load_image_dataset(validation_dir=validation_dir)["validation"]
        names = split.features["label"].names
        unknown = [n for n in names if n not in model.config.label2id]
        if unknown:
            raise ValueError(
                f"--validation_dir {validation_dir!r} has class folders {unknown} that the model lacks "
                f"(its classes: {list(model.config.label2id)})."
            )
        embeds, labels = encode_dataset(model.clip, model.processor.image_processor, split, show_progress=False)
        mapping = torch.tensor([model.config.label2id[n] for n in names])
        validation = (embeds, mapping[labels])
    return AppSession(model, validation)


def page_note(model) -> str:
    """What the page says about the model (loudly when the backbone is a random-init stand-in)."""
    backbone = getattr(model.config, "clip_name_or_path", None) or "a CLIP-family backbone"
    note = f"Model: `{model.config.model_type}` over `{backbone}`, {model.config.num_labels} classes"
    if hasattr(model, "cache_keys"):
        note += f", {model.cache_keys.shape[0]} cache entries"
    if "random-init" in str(backbone):
        note += ". **Random-init backbone (offline demo): the scores show the mechanics, not CLIP's accuracy.**"
        return note
    return note + "."


def serve(model: str, validation_dir: str | None = None, port: int | None = None, host=None, title=None) -> None:
    """Load the model and serve the page (blocking)."""
    _require_gradio()
    from ..app.server import build_blocks, launch

    session = load_session(model, validation_dir)
    launch(build_blocks(session, title or "hf-tip: see why, teach it", page_note(session.model)), port, host)


def export_space(model: str, folder: str, validation_dir: str | None = None, overwrite: bool = False) -> Path:
    """Write `app.py`, `requirements.txt`, `README.md` (Space metadata), `model/` (the saved model, with its
    thumbnails), `validation/` (a copy of `validation_dir`) and `hf_tip/` (this package) into `folder`."""
    from .common import check_output_dir

    gradio = _require_gradio()
    path = check_output_dir(folder, overwrite)
    session = load_session(model, validation_dir)
    path.mkdir(parents=True, exist_ok=True)
    session.model.save_pretrained(path / "model")
    if validation_dir is not None:
        shutil.copytree(validation_dir, path / "validation", dirs_exist_ok=True)
    package = Path(__file__).resolve().parents[1]
    shutil.copytree(package, path / "hf_tip", dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    title = "Tip-Adapter: " + ", ".join(list(session.class_names)[:3]) + ("…" if len(session.class_names) > 3 else "")
    validation = "validation" if validation_dir is not None else None
    (path / "app.py").write_text(SPACE_APP.format(validation=validation, title=title))
    (path / "requirements.txt").write_text("\n".join(SPACE_REQUIREMENTS) + "\n")
    note = page_note(session.model)
    (path / "README.md").write_text(SPACE_README.format(title=title, gradio_version=gradio.__version__, note=note))
    return path
