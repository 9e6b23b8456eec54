"""Secrets never leave the machine: the one place that redacts command lines and text before they are recorded.

Every command line that hf-tip writes down (model cards, `results.json`, `all_results.json`, the compare tables)
goes through [`redact_argv`] or [`redact_command`]; free text that may quote one goes through [`redact_text`].
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence

REDACTED = "<redacted>"
# Flags whose value is a secret, in either `--flag VALUE` or `--flag=VALUE` form.
SECRET_FLAGS = ("--hub_token", "--token", "--hf_token", "--use_auth_token", "--api_key", "--password")
# Hugging Face access tokens (`hf_` + 30 or more letters and digits) and the older `api_` organisation tokens.
TOKEN_PATTERN = re.compile(r"\b(?:hf|api)_[A-Za-z0-9]{30,}\b")


def redact_text(text: str) -> str:
    """`text` with every substring shaped like a Hugging Face token replaced by `<redacted>`."""
    return TOKEN_PATTERN.sub(REDACTED, text)


def redact_argv(argv: Sequence[str]) -> list[str]:
    """A command line's arguments with the value of every secret flag (`--hub_token`, `--token`, ...) and every
    token-shaped argument replaced by `<redacted>`."""
    out: list[str] = []
    hide_next = False
    for arg in argv:
        arg = str(arg)
        if hide_next:
            out.append(REDACTED)
            hide_next = False
            continue
        flag, eq, _ = arg.partition("=")
        if flag in SECRET_FLAGS:
            if eq:
                out.append(f"{flag}={REDACTED}")
            else:
                out.append(arg)
                hide_next = True
            continue
        out.append(redact_text(arg))
    return out


def redact_command(program: str, argv: Sequence[str]) -> str:
    """`program` followed by the redacted, shell-quoted `argv`: the command line as it may be recorded."""
    return " ".join([program, shlex.join(redact_argv(argv))]).strip()


__all__ = ["REDACTED", "redact_argv", "redact_command", "redact_text"]
