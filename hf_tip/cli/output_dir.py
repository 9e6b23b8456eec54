"""The output-folder checks every run makes before any work: the folder can be created and written, and it holds
nothing that saving would replace (unless the user says so). The commands and fine-tuning share them."""

from __future__ import annotations

import tempfile
from pathlib import Path

MODEL_FILES = ("config.json", "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")


def check_writable(output_dir: str | Path, flag: str = "--output_dir") -> Path:
    """Raise a `ValueError` naming `flag` when `output_dir` is a file, lies under a file, or cannot be written (tried
    by creating a temporary file in its nearest existing folder, which also holds for root). Creates nothing."""
    path = Path(output_dir)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{flag} {str(output_dir)!r} is a file, not a folder.")
    existing = next(p for p in (path.absolute(), *path.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise ValueError(f"{flag} {str(output_dir)!r} cannot be created: {str(existing)!r} is a file, not a folder.")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        raise ValueError(
            f"{flag} {str(output_dir)!r} is not writable (cannot create files in {str(existing)!r}: {error})"
        ) from error
    return path


def check_output_dir(output_dir: str, overwrite: bool, flag: str = "--output_dir") -> Path:
    """Before any work: refuse an `output_dir` that is a file, lies under a file, cannot be written, or is a folder
    that is not empty (it may hold a model or other files that saving would replace), unless `overwrite`. Creates
    nothing."""
    path = Path(output_dir)
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        held = [name for name in MODEL_FILES if (path / name).exists()]
        what = f"already holds a model ({', '.join(held)})" if held else "is not empty"
        raise ValueError(
            f"{flag} {output_dir!r} {what}; pass --overwrite_output_dir to write into it anyway, or choose "
            "another folder."
        )
    return check_writable(path, flag)


__all__ = ["MODEL_FILES", "check_output_dir", "check_writable"]
