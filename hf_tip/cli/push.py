"""`hf-tip push FOLDER --hub_model_id user/name`: upload a saved Tip-Adapter folder to the Hugging Face Hub, with its
model card re-rendered for the repo id (see `hf_tip.hub.push.push_folder`)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import ClassVar

HELP = "Push a saved Tip-Adapter folder to the Hugging Face Hub with its model card."


@dataclass
class PushArguments:
    """The Hub repository and how to commit to it."""

    _argument_group_name: ClassVar[str] = "hub"

    hub_model_id: str = field(metadata={"help": "The Hub repository, as user/name (created if missing)."})
    private: bool = field(default=False, metadata={"help": "Create the repository as private (a new one only)."})
    revision: str | None = field(
        default=None, metadata={"help": "The branch to commit to (created from main if missing; unset: main)."}
    )
    commit_message: str | None = field(
        default=None, metadata={"help": "The commit message (unset: 'Upload Tip-Adapter')."}
    )
    create_pr: bool = field(default=False, metadata={"help": "Open a pull request instead of committing."})
    hub_token: str | None = field(
        default=None, metadata={"help": "A Hub token (unset: the stored login or HF_TOKEN)."}
    )


ARGUMENTS = (PushArguments,)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", help="A folder written by `hf-tip build` or `model.save_pretrained`.")


def run(args: PushArguments, positional: argparse.Namespace, *, argv: list[str]) -> int:
    from ..hub.push import push_folder

    info = push_folder(
        positional.folder,
        args.hub_model_id,
        private=args.private or None,
        token=args.hub_token,
        revision=args.revision,
        create_pr=args.create_pr,
        commit_message=args.commit_message,
    )
    print(f"Pushed {positional.folder} to {args.hub_model_id}: commit {info.oid}")
    if getattr(info, "pr_url", None):
        print(f"Pull request: {info.pr_url}")
    return 0
