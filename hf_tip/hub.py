"""Pushing Tip-Adapters to the Hugging Face Hub: a model (`model.push_to_hub`) or a saved folder (`hf-tip push`).

Both upload one complete repository in one commit: `config.json` (with `auto_map`), the weights, the remote code
(`trust_remote_code` loading), the processor files and the hf_tip model card. A README.md on the Hub that hf_tip did
not generate is kept.
"""

from __future__ import annotations

import fnmatch
import json
import os
import tempfile
import warnings
from pathlib import Path

from huggingface_hub import CommitInfo, CommitOperationAdd, CommitOperationDelete, HfApi
from transformers.dynamic_module_utils import get_relative_imports

from .configuration_tip_adapter import TipAdapterConfig
from .model_card import is_generated, read_card_data, render_model_card

# Every file the loaders ask for: AutoImageProcessor / pipeline read both processor_config.json (v5, nested) and the
# legacy preprocessor_config.json; CLIPTokenizer reads the tokenizer files.
PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json", "tokenizer.json", "tokenizer_config.json")
# Weight files of an earlier push that a new one replaces (a sharded save next to a single file would confuse loading).
STALE_WEIGHTS = ["model.safetensors", "model-*-of-*.safetensors", "model.safetensors.index.json"]


def missing_files(folder: str | os.PathLike) -> list[str]:
    """The files a complete Tip-Adapter save has and `folder` lacks: config, weights, remote code, processor."""
    folder = Path(folder)
    config_path = folder / "config.json"
    if not config_path.is_file():
        return ["config.json"]
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if config.get("model_type") != "tip-adapter":
        raise ValueError(
            f"{config_path} describes a {config.get('model_type')!r} model, not a Tip-Adapter ('tip-adapter')."
        )
    missing = []
    if (folder / "model.safetensors.index.json").is_file():
        index = json.loads((folder / "model.safetensors.index.json").read_text(encoding="utf-8"))
        missing += sorted({f for f in index.get("weight_map", {}).values() if not (folder / f).is_file()})
    elif not (folder / "model.safetensors").is_file():
        missing.append("model.safetensors")
    auto_map = config.get("auto_map") or {}
    if not {"AutoConfig", "AutoModelForImageClassification"} <= set(auto_map):
        missing.append("config.json: auto_map (AutoConfig, AutoModelForImageClassification)")
    # the modules auto_map names and, recursively, the files they import relatively (what transformers downloads)
    pending = sorted({f"{reference.split('.')[0]}.py" for reference in auto_map.values()})
    seen: set[str] = set()
    while pending:
        name = pending.pop(0)
        if name in seen:
            continue
        seen.add(name)
        if not (folder / name).is_file():
            missing.append(name)
            continue
        pending += [f"{module}.py" for module in get_relative_imports(folder / name)]
    missing += [name for name in PROCESSOR_FILES if not (folder / name).is_file()]
    return missing


def check_saved_folder(folder: str | os.PathLike) -> None:
    """Raise a `ValueError` naming what is missing when `folder` is not a complete Tip-Adapter save."""
    if not Path(folder).is_dir():
        raise ValueError(f"{str(folder)!r} is not a directory; pass the folder `save_pretrained` wrote.")
    missing = missing_files(folder)
    if missing:
        raise ValueError(
            f"{str(folder)!r} is not a complete Tip-Adapter save; missing: {', '.join(missing)}. Save it again with "
            "`model.save_pretrained(folder)` from hf_tip (with `model.processor` set: the pipeline needs the "
            "processor files)."
        )


# Never uploaded: git and cache folders, and a fine-tuning run's `checkpoints/` (optimizer state and pickled RNG states)
# and tracker `logs/` that `hf-tip push` may find in its output folder.
SKIPPED_DIRS = {".git", ".cache", "__pycache__", "checkpoints", "logs"}
SKIPPED_SUFFIXES = {".pyc", ".pkl", ".pickle"}


def _upload_files(folder: Path) -> dict[str, Path]:
    """The files of `folder` to upload, by path in the repository (see `SKIPPED_DIRS`, `SKIPPED_SUFFIXES`)."""
    return {
        path.relative_to(folder).as_posix(): path
        for path in sorted(folder.rglob("*"))
        if path.is_file()
        and not SKIPPED_DIRS & set(path.relative_to(folder).parts)
        and path.suffix not in SKIPPED_SUFFIXES
    }


def push_folder(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    private: bool | None = None,
    token: str | bool | None = None,
    revision: str | None = None,
    create_pr: bool = False,
    commit_message: str | None = None,
    commit_description: str | None = None,
    tags: list[str] | None = None,
) -> CommitInfo:
    r"""
    Upload a saved Tip-Adapter folder to a Hub model repository, in one commit.

    The folder is checked first ([`check_saved_folder`]). A README.md that hf_tip generated (or none) is uploaded as a
    card re-rendered for `repo_id` (the folder itself is not changed); a README.md on the Hub that hf_tip did not
    generate is kept. Weight files of an earlier push that this one does not replace are deleted.

    Args:
        folder (`str` or `os.PathLike`): what `TipAdapterForImageClassification.save_pretrained` wrote.
        repo_id (`str`): `user/name` of the repository (created when missing).
        private (`bool`, *optional*): visibility of a newly created repository.
        token (`str` or `bool`, *optional*): Hub token; defaults to the stored login / `HF_TOKEN`.
        revision (`str`, *optional*): branch to commit to (created from `main` when missing).
        create_pr (`bool`, *optional*, defaults to `False`): open a pull request instead of committing.
        commit_message (`str`, *optional*), commit_description (`str`, *optional*): the commit's text.
        tags (`list[str]`, *optional*): tags added to the generated card's metadata.

    Returns:
        [`huggingface_hub.CommitInfo`] of the commit (its `oid` is the revision to pin).
    """
    check_saved_folder(folder)
    folder = Path(folder)
    files = _upload_files(folder)
    api = HfApi(token=token)
    repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
    if revision is not None and not revision.startswith("refs/pr"):
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    remote_files = api.list_repo_files(repo_id, revision=revision)

    local_card = files.pop("README.md", None)
    local_text = local_card.read_text(encoding="utf-8", errors="replace") if local_card is not None else None
    card: bytes | Path | None = local_card  # a user's own README.md in the folder goes up as it is
    if local_text is None or is_generated(local_text):
        config = TipAdapterConfig.from_pretrained(folder)
        card = str(render_model_card(config, read_card_data(local_text or ""), repo_id, tags)).encode()
    if "README.md" in remote_files and card is not None:
        with tempfile.TemporaryDirectory() as tmp:
            remote = Path(api.hf_hub_download(repo_id, "README.md", revision=revision, local_dir=tmp))
            remote_text = remote.read_text(encoding="utf-8", errors="replace")
        if not is_generated(remote_text):
            warnings.warn(
                f"The README.md of {repo_id} was not generated by hf_tip; it is kept and {folder}'s card is not "
                "uploaded.",
                UserWarning,
                stacklevel=2,
            )
            card = None

    operations: list = [
        CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(path)) for name, path in files.items()
    ]
    if card is not None:
        operations.append(
            CommitOperationAdd(
                path_in_repo="README.md", path_or_fileobj=card if isinstance(card, bytes) else str(card)
            )
        )
    operations += [
        CommitOperationDelete(path_in_repo=name)
        for name in remote_files
        if name not in files and any(fnmatch.fnmatch(name, pattern) for pattern in STALE_WEIGHTS)
    ]
    return api.create_commit(
        repo_id,
        operations,
        commit_message=commit_message or "Upload Tip-Adapter",
        commit_description=commit_description,
        revision=revision,
        create_pr=create_pr,
    )


def push_model(
    model,
    repo_id: str,
    *,
    commit_message: str | None = None,
    commit_description: str | None = None,
    private: bool | None = None,
    token: str | bool | None = None,
    revision: str | None = None,
    create_pr: bool = False,
    max_shard_size: int | str | None = "50GB",
    tags: list[str] | None = None,
) -> CommitInfo:
    """`model.save_pretrained` into a temporary folder, then [`push_folder`] (which renders the card for `repo_id`)."""
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp, max_shard_size=max_shard_size)  # its card is re-rendered for `repo_id` on upload
        return push_folder(
            tmp,
            repo_id,
            private=private,
            token=token,
            revision=revision,
            create_pr=create_pr,
            commit_message=commit_message,
            commit_description=commit_description,
            tags=tags,
        )


__all__ = ["check_saved_folder", "missing_files", "push_folder", "push_model"]
