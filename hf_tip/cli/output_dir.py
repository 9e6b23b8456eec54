"""The output-folder checks every run makes before any work: the folder can be created and written, and it holds
nothing that saving would replace (unless the user says so). The commands and fine-tuning share them."""

from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path

MODEL_FILES = ("config.json", "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
_HELD: dict[str, int] = {}  # output folder -> the open lock file this process holds until it exits


def hold_output_lock(output_dir: str | Path, flag: str = "--output_dir") -> None:
    """Take an exclusive lock (`fcntl.flock` on `.<name>.hf-tip.lock` beside the folder, or in its nearest existing
    ancestor) held until this process exits, so that two runs into one output folder cannot both write it; raise a
    `ValueError` naming `flag` when another process holds it. Taking it again in the same process is a no-op."""
    target = Path(output_dir).absolute()
    key = str(target)
    if key in _HELD:
        return
    anchor = next(p for p in target.parents if p.is_dir())
    name = str(target.relative_to(anchor)).replace(os.sep, "--")
    lock_path = anchor / f".{name}.hf-tip.lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ValueError(
            f"{flag} {str(output_dir)!r} is being written by another hf-tip run (it holds {str(lock_path)!r}); wait "
            "for it to finish, or choose another folder."
        ) from None
    _HELD[key] = fd


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
    that is not empty (it may hold a model or other files that saving would replace), unless `overwrite`. Then holds
    the folder's lock for the rest of the run (`hold_output_lock`): a second run into the same folder fails clearly.
    Creates nothing but the lock file."""
    path = Path(output_dir)
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        held = [name for name in MODEL_FILES if (path / name).exists()]
        what = f"already holds a model ({', '.join(held)})" if held else "is not empty"
        raise ValueError(
            f"{flag} {output_dir!r} {what}; pass --overwrite_output_dir to write into it anyway, or choose "
            "another folder."
        )
    path = check_writable(path, flag)
    hold_output_lock(path, flag)
    if path.is_dir() and any(path.iterdir()) and not overwrite:  # filled while we waited for the lock
        raise ValueError(f"{flag} {output_dir!r} is not empty; another run wrote into it. Choose another folder.")
    return path


__all__ = ["MODEL_FILES", "check_output_dir", "check_writable", "hold_output_lock"]
