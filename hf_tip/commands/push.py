"""`hf-tip push FOLDER --hub_model_id user/name`: upload a saved Tip-Adapter folder to the Hugging Face Hub, with its
model card re-rendered for the repo id (see `hf_tip.hub.push_folder`)."""

from __future__ import annotations

import argparse

from ..hub import push_folder
from .build import fail


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", help="A folder written by `hf-tip build` or `model.save_pretrained`.")
    parser.add_argument("--hub_model_id", required=True, help="The Hub repository, as user/name (created if missing).")
    parser.add_argument("--private", action="store_true", help="Create the repository as private (a new one only).")
    parser.add_argument("--revision", help="The branch to commit to (created from main if missing; default: main).")
    parser.add_argument("--commit_message", help="The commit message (default: 'Upload Tip-Adapter').")
    parser.add_argument("--create_pr", action="store_true", help="Open a pull request instead of committing.")
    parser.add_argument("--hub_token", help="A Hub token (default: the stored login or HF_TOKEN).")


def run(args: argparse.Namespace) -> int:
    try:
        info = push_folder(
            args.folder,
            args.hub_model_id,
            private=args.private or None,
            token=args.hub_token,
            revision=args.revision,
            create_pr=args.create_pr,
            commit_message=args.commit_message,
        )
    except (ValueError, OSError) as error:
        return fail("push", error)
    print(f"Pushed {args.folder} to {args.hub_model_id}: commit {info.oid}")
    if getattr(info, "pr_url", None):
        print(f"Pull request: {info.pr_url}")
    return 0
