"""Pushing hf-tip models to the Hugging Face Hub: a model (`model.push_to_hub`) or a saved folder (`hf-tip push`).

Push uploads an **allowlist** of what a model repository holds, never the rest of the folder:

- `config.json`; `model.safetensors` or its shards `model-XXXXX-of-XXXXX.safetensors` with
  `model.safetensors.index.json`; `thumbnails.safetensors` (the optional thumbnail store);
- the processor and tokenizer files ([`PROCESSOR_FILES`]);
- the remote code: the modules `config.json`'s `auto_map` names and the files they import relatively
  (`transformers.dynamic_module_utils.get_relative_import_files`, what `trust_remote_code` downloads);
- `README.md` (the hf_tip card, re-rendered for the repo id) and the result files ([`RESULT_FILES`]).

Only regular files at the top of the folder qualify: symbolic links are never followed (a `config.json` linking to
`/etc/passwd` is left out, and the push then refuses the incomplete folder), sub-folders (`checkpoints/`, `.git/`,
`.huggingface/`) are never entered. Everything left out is logged as a warning. The upload is built in a staging
copy, where the card is re-rendered and the result files are redacted ([`hf_tip.hub.redact`]), then sent with
`HfApi.upload_folder(allow_patterns=..., delete_patterns=...)`, which also deletes weight files of an earlier push
that this one replaces. A README.md on the Hub that hf_tip did not generate is kept.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import stat
import tempfile
import warnings
from pathlib import Path
from typing import Any

from huggingface_hub import CommitInfo, HfApi
from transformers.dynamic_module_utils import get_relative_import_files

from .model_card import clean_command, is_generated, public_name, read_card_data, redact_free_text, render_model_card
from .redact import REDACTED

logger = logging.getLogger(__name__)

# The model types hf_tip registers (a saved folder of any other type is refused).
MODEL_TYPES = frozenset({"tip-adapter", "clip-zero-shot", "tip-x", "clip-adapter", "linear-probe", "gda"})
CONFIG_FILE = "config.json"
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")
SHARD_RE = re.compile(r"model-\d{5}-of-\d{5}\.safetensors")
# Files of an earlier push that a new one replaces or withdraws: weights (a sharded save next to a single file would
# confuse loading) and the opt-in thumbnail store (private images must not outlive `disable_thumbnails()`).
STALE_WEIGHTS = [
    "model.safetensors",
    "model-*-of-*.safetensors",
    "model.safetensors.index.json",
    "thumbnails.safetensors",
]
# Every file the loaders may ask for: AutoImageProcessor / pipeline read processor_config.json (v5, nested) and the
# legacy preprocessor_config.json; the tokenizers of the CLIP families read the rest.
IMAGE_PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json")
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "vocab.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
)
PROCESSOR_FILES = IMAGE_PROCESSOR_FILES + TOKENIZER_FILES
RESULT_FILES = ("results.json", "all_results.json", "eval_results.json", "train_results.json")
THUMBNAILS_FILE = "thumbnails.safetensors"
CARD_FILE = "README.md"
STATIC_FILES = frozenset((CONFIG_FILE, *WEIGHT_FILES, *PROCESSOR_FILES, *RESULT_FILES, THUMBNAILS_FILE, CARD_FILE))
# What a complete full save needs beyond config, weights and code (the tokenizer: its config and one vocabulary).
REQUIRED_PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json")
VOCABULARY_FILES = ("tokenizer.json", "vocab.json", "vocab.txt", "spiece.model", "sentencepiece.bpe.model")
# JSON keys whose string values are secrets wherever they appear in a result file.
SECRET_KEYS = frozenset({"hub_token", "token", "hf_token", "use_auth_token", "api_key", "password"})


# ----------------------------------------------------------------------------------------------- folder checks
def _is_regular_file(path: Path) -> bool:
    """Whether `path` is a regular file and not a symbolic link (which push never follows)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def read_config(folder: str | os.PathLike) -> dict[str, Any]:
    """`folder`'s config.json as a dict; raises a `ValueError` naming the file when it is not a JSON object of one
    of the model types hf_tip registers ([`MODEL_TYPES`])."""
    path = Path(folder) / CONFIG_FILE
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(
            f"{path} is not a JSON file ({error}); save the model again with `save_pretrained`."
        ) from None
    if not isinstance(config, dict):
        raise ValueError(f"{path} holds a {type(config).__name__}, not a model configuration (a JSON object).")
    if config.get("model_type") not in MODEL_TYPES:
        raise ValueError(
            f"{path} describes a {config.get('model_type')!r} model, not one of the models hf_tip saves "
            f"({', '.join(sorted(MODEL_TYPES))})."
        )
    return config


def is_adapter_only(config: dict[str, Any]) -> bool:
    """Whether a config describes an adapter-only save (`"save_backbone": false`): the backbone loads from its repo."""
    return config.get("save_backbone") is False or config.get("adapter_only") is True


def remote_code_files(folder: str | os.PathLike, config: dict[str, Any]) -> tuple[list[str], list[str]]:
    """`(present, missing)`: the modules `config["auto_map"]` names (in this repository, not `other/repo--module`)
    and, recursively, the files they import relatively, as file names in `folder`."""
    folder = Path(folder)
    references: list[str] = []
    for value in (config.get("auto_map") or {}).values():
        references += value if isinstance(value, list) else [value]
    modules = sorted({f"{ref.split('.')[0]}.py" for ref in references if isinstance(ref, str) and "--" not in ref})
    present: set[str] = set()
    missing: set[str] = set()
    for name in modules:
        if not _is_regular_file(folder / name):
            missing.add(name)
            continue
        present.add(name)
        try:
            imported = [Path(path).name for path in get_relative_import_files(folder / name)]
        except OSError as error:  # an imported file is missing
            missing.add(Path(error.filename or "?").name)
            continue
        for child in imported:
            (present if _is_regular_file(folder / child) else missing).add(child)
    return sorted(present), sorted(missing - present)


def missing_files(folder: str | os.PathLike) -> list[str]:
    """The files a complete save of an hf_tip model has and `folder` lacks: config, weights, remote code, processor.

    An adapter-only save (`"save_backbone": false` in config.json) needs config, weights, an image processor file and
    the code its `auto_map` names; tokenizer files are optional there."""
    folder = Path(folder)
    if not _is_regular_file(folder / CONFIG_FILE):
        return [CONFIG_FILE]
    config = read_config(folder)
    missing = []
    index_path = folder / "model.safetensors.index.json"
    if _is_regular_file(index_path):
        try:
            weight_map = json.loads(index_path.read_text(encoding="utf-8")).get("weight_map", {})
        except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            raise ValueError(f"{index_path} is not a safetensors index (a JSON object with a `weight_map`).") from None
        missing += sorted({f for f in weight_map.values() if not _is_regular_file(folder / f)})
    elif not _is_regular_file(folder / "model.safetensors"):
        missing.append("model.safetensors")
    auto_map = config.get("auto_map") or {}
    adapter_only = is_adapter_only(config)
    if not adapter_only and not {"AutoConfig", "AutoModelForImageClassification"} <= set(auto_map):
        missing.append("config.json: auto_map (AutoConfig, AutoModelForImageClassification)")
    missing += remote_code_files(folder, config)[1]
    if adapter_only:
        if not any(_is_regular_file(folder / name) for name in IMAGE_PROCESSOR_FILES):
            missing.append(" or ".join(IMAGE_PROCESSOR_FILES))
        return missing
    missing += [name for name in REQUIRED_PROCESSOR_FILES if not _is_regular_file(folder / name)]
    if not any(_is_regular_file(folder / name) for name in VOCABULARY_FILES):
        missing.append(f"a tokenizer vocabulary ({', '.join(VOCABULARY_FILES)})")
    return missing


def check_saved_folder(folder: str | os.PathLike, left_out: list[str] | None = None) -> None:
    """Raise a `ValueError` naming what is missing when `folder` is not a complete save of an hf_tip model
    (`left_out`: what push left out of its staging copy, named in the message)."""
    if not Path(folder).is_dir():
        raise ValueError(f"{str(folder)!r} is not a directory; pass the folder `save_pretrained` wrote.")
    missing = missing_files(folder)
    if missing:
        skipped = f" Left out: {'; '.join(left_out)}." if left_out else ""
        raise ValueError(
            f"{str(folder)!r} is not a complete hf-tip save; missing: {', '.join(missing)}.{skipped} Save it again "
            "with `model.save_pretrained(folder)` from hf_tip (with `model.processor` set: the pipeline needs the "
            "processor files)."
        )


# ------------------------------------------------------------------------------------------------------ staging
def select_upload(folder: str | os.PathLike) -> tuple[list[str], list[str]]:
    """`(files, left_out)`: the names of the regular files at the top of `folder` that a model repository holds (see
    the module docstring), and every other entry with the reason it stays local."""
    folder = Path(folder)
    names = sorted(os.listdir(folder))
    try:
        config = read_config(folder) if _is_regular_file(folder / CONFIG_FILE) else {}
    except ValueError:
        config = {}
    code = set(remote_code_files(folder, config)[0]) if config else set()
    files, left_out = [], []
    for name in names:
        path = folder / name
        if path.is_symlink():
            left_out.append(f"{name} (a symbolic link: never followed)")
        elif path.is_dir():
            left_out.append(f"{name}/ (a folder: only top-level model files are uploaded)")
        elif not _is_regular_file(path):
            left_out.append(f"{name} (not a regular file)")
        elif name in STATIC_FILES or SHARD_RE.fullmatch(name) or name in code:
            files.append(name)
        elif name.endswith(".py"):
            left_out.append(f"{name} (code that config.json's auto_map does not load)")
        else:
            left_out.append(f"{name} (not a model repository file)")
    return files, left_out


def _copy_no_follow(source: Path, target: Path) -> None:
    """Copy (or hard-link) a regular file without following a symbolic link put in its place meanwhile."""
    fd = os.open(source, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as src:
        if not stat.S_ISREG(os.fstat(src.fileno()).st_mode):
            raise ValueError(f"{source} is not a regular file; push does not upload it.")
        opened = os.fstat(src.fileno())
        try:
            os.link(source, target, follow_symlinks=False)
            linked = os.lstat(target)
            if stat.S_ISREG(linked.st_mode) and (linked.st_dev, linked.st_ino) == (opened.st_dev, opened.st_ino):
                return
            os.unlink(target)  # the name was replaced between the open and the link: copy what was opened
        except OSError:  # another file system, or links not supported: copy the bytes of the opened file
            pass
        with open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)


def _redact_json(value: Any, key: str = "") -> Any:
    """A JSON value with the values of secret keys and every secret in its strings redacted, recorded command lines
    cleaned ([`clean_command`]) and absolute local paths reduced to their last component."""
    if isinstance(value, dict):
        return {
            name: REDACTED
            if name.lower() in SECRET_KEYS and isinstance(item, str) and item
            else _redact_json(item, name)
            for name, item in value.items()
        }
    if isinstance(value, list):
        return [_redact_json(item, key) for item in value]
    if not isinstance(value, str):
        return value
    if key == "command":
        return clean_command(value)
    return redact_free_text(public_name(value) if os.path.isabs(value) else value)


def _stage_results(source: Path, target: Path) -> None:
    """Write a redacted copy of a result JSON file (a command line it records may hold a token)."""
    text = source.read_text(encoding="utf-8", errors="replace")
    try:
        redacted = json.dumps(_redact_json(json.loads(text)), indent=2) + "\n"
    except json.JSONDecodeError:
        redacted = redact_free_text(text)
    target.write_text(redacted, encoding="utf-8")


def stage_upload(folder: str | os.PathLike, staging: str | os.PathLike) -> tuple[list[str], list[str]]:
    """Copy what [`select_upload`] selects from `folder` into the empty folder `staging` (result files redacted,
    README.md not copied: the card is added by the push), after checking that they make a complete save. Returns
    `(files, left_out)`; raises a `ValueError` naming what is missing, and what was left out, when incomplete."""
    folder, staging = Path(folder), Path(staging)
    files, left_out = select_upload(folder)
    check_saved_folder(folder, left_out)  # symbolic links count as missing: they are not staged
    for name in files:
        if name in RESULT_FILES:
            _stage_results(folder / name, staging / name)
        elif name != CARD_FILE:
            _copy_no_follow(folder / name, staging / name)
    return files, left_out


# --------------------------------------------------------------------------------------------------------- push
def _card_text(api: HfApi, folder: Path, staging: Path, repo_id: str, revision: str | None, tags) -> str | None:
    """The README.md to upload: hf_tip's card re-rendered for `repo_id` (from the folder's stored card data), a
    user's own README.md of the folder (redacted), or `None` when the Hub's README.md is a user's (kept)."""
    local = folder / CARD_FILE
    local_text = local.read_text(encoding="utf-8", errors="replace") if _is_regular_file(local) else None
    if local_text is not None and not is_generated(local_text):
        card = redact_free_text(local_text)
    else:
        from transformers import AutoConfig, PreTrainedConfig

        try:
            config = AutoConfig.from_pretrained(staging)
        except (ValueError, KeyError):  # a model type this install of hf_tip does not register
            config = PreTrainedConfig.from_json_file(str(staging / CONFIG_FILE))
        card = str(render_model_card(config, read_card_data(local_text or ""), repo_id, tags))
    if CARD_FILE in api.list_repo_files(repo_id, revision=revision):
        with tempfile.TemporaryDirectory() as tmp:
            remote = Path(api.hf_hub_download(repo_id, CARD_FILE, revision=revision, local_dir=tmp))
            remote_text = remote.read_text(encoding="utf-8", errors="replace")
        if not is_generated(remote_text):
            warnings.warn(
                f"The README.md of {repo_id} was not generated by hf_tip; it is kept and {folder}'s card is not "
                "uploaded.",
                UserWarning,
                stacklevel=3,
            )
            return None
    return card


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
    Upload a saved hf-tip folder to a Hub model repository: the allowlist of the module docstring, never anything else.

    The upload is staged in a temporary copy (symbolic links and sub-folders left out, result files redacted) and
    checked there ([`check_saved_folder`]); what was left out is logged as a warning. A README.md that hf_tip
    generated (or none) is uploaded as a card re-rendered for `repo_id` (the folder itself is not changed); a
    README.md on the Hub that hf_tip did not generate is kept. Weight files of an earlier push that this one does not
    replace are deleted.

    Args:
        folder (`str` or `os.PathLike`): what `save_pretrained` wrote.
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
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{str(folder)!r} is not a directory; pass the folder `save_pretrained` wrote.")
    with tempfile.TemporaryDirectory(prefix="hf-tip-push-") as tmp:
        staging = Path(tmp)
        files, left_out = stage_upload(folder, staging)
        if left_out:
            logger.warning("hf-tip push leaves out of %s: %s", folder, "; ".join(left_out))
        api = HfApi(token=token)
        repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
        if revision is not None and not revision.startswith("refs/pr"):
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        card = _card_text(api, folder, staging, repo_id, revision, tags)
        if card is not None:
            (staging / CARD_FILE).write_text(card, encoding="utf-8")
        return api.upload_folder(
            repo_id=repo_id,
            folder_path=staging,
            allow_patterns=sorted(os.listdir(staging)),
            delete_patterns=STALE_WEIGHTS,
            commit_message=commit_message or "Upload hf-tip model",
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
    **save_kwargs,
) -> CommitInfo:
    """`model.save_pretrained` into a temporary folder (`save_kwargs` passed on, e.g. `save_backbone=False`), then
    [`push_folder`] (which renders the card for `repo_id`)."""
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp, max_shard_size=max_shard_size, **save_kwargs)
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


__all__ = [
    "MODEL_TYPES",
    "check_saved_folder",
    "missing_files",
    "push_folder",
    "push_model",
    "read_config",
    "remote_code_files",
    "select_upload",
    "stage_upload",
]
