"""The `hf-tip` command: `hf-tip COMMAND [flags]` or `hf-tip COMMAND config.{json,yaml}`.

A command is a module in `COMMANDS` (one line adds one) that defines:
- `HELP` (`str`): one line for `hf-tip --help`;
- `ARGUMENTS` (`tuple` of dataclasses): its flags, parsed by `transformers.HfArgumentParser`;
- optionally `configure(parser)`: extra (positional) arguments, handed to `run` as a last `argparse.Namespace`;
- `run(*arguments, argv) -> int`: the parsed dataclass instances in `ARGUMENTS` order, and `argv`, the command line
  as typed (record it only through `hf_tip.hub.redact.redact_command`).
A command that must own its parsing and error reporting (`finetune`: one message on every process) defines
`HELP` and `main(argv) -> int` instead, and gets the arguments after its name.

User errors (`ValueError`, `OSError`) print one line, `hf-tip COMMAND: error: ...`, and exit 1; flag syntax errors
exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

from transformers import HfArgumentParser

COMMANDS = {
    "build": "hf_tip.cli.build",
    "evaluate": "hf_tip.cli.evaluate",
    "demo": "hf_tip.cli.demo",
    "push": "hf_tip.cli.push",
    "finetune": "hf_tip.cli.finetune",
    "compare": "hf_tip.cli.compare",
    "update": "hf_tip.cli.update",
    "app": "hf_tip.cli.app",
}
CONFIG_SUFFIXES = (".json", ".yaml", ".yml")


class CommandParser(HfArgumentParser):
    """`HfArgumentParser` whose flag errors are one line, `hf-tip CMD: error: ...` (exit 2)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def fail(command: str, error: BaseException) -> int:
    """Print a clean one-line error (no traceback) and return the exit code 1."""
    message = " ".join(str(error).split("\n"))
    print(f"hf-tip {command}: error: {message}", file=sys.stderr)
    return 1


def load_command(name: str) -> ModuleType:
    return importlib.import_module(COMMANDS[name])


def command_help(module: ModuleType) -> str:
    """A command's one line: its `HELP`, else the first line of its docstring."""
    return getattr(module, "HELP", None) or (module.__doc__ or "").strip().split("\n")[0]


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser: lists the commands (`hf-tip --help`)."""
    parser = argparse.ArgumentParser(
        prog="hf-tip",
        description="Tip-Adapter: training-free few-shot CLIP. Run `hf-tip COMMAND --help` for a command's flags; "
        "`hf-tip COMMAND config.yaml` reads them from a JSON or YAML file.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        subparsers.add_parser(name, help=command_help(load_command(name)), add_help=False)
    return parser


def command_parser(name: str, module: ModuleType) -> CommandParser:
    """The parser of one command: its dataclasses' fields as flags."""
    parser = CommandParser(module.ARGUMENTS, prog=f"hf-tip {name}", description=command_help(module))
    if hasattr(module, "configure"):
        module.configure(parser)
    return parser


def parse(parser: CommandParser, argv: list[str]) -> tuple:
    """The dataclass instances from flags, or from one `.json` / `.yaml` file (unknown keys are an error)."""
    if len(argv) == 1 and argv[0].endswith(CONFIG_SUFFIXES):
        path = argv[0]
        try:
            if path.endswith(".json"):
                return parser.parse_json_file(path)
            return parser.parse_yaml_file(path)
        except TypeError as error:  # a required field missing from the file
            raise ValueError(f"{path}: {error}") from None
    return parser.parse_args_into_dataclasses(argv, look_for_args_file=False)


def main(argv: Sequence[str] | None = None) -> int:
    argv = [str(a) for a in (sys.argv[1:] if argv is None else argv)]
    if not argv or argv[0] not in COMMANDS:
        build_parser().parse_args(argv)  # prints the help, or the usage error, and exits
        return 2
    name = argv[0]
    module = load_command(name)
    if hasattr(module, "main"):
        return int(module.main(argv[1:]) or 0)
    try:
        arguments = parse(command_parser(name, module), argv[1:])
        return int(module.run(*arguments, argv=argv) or 0)
    except (ValueError, OSError) as error:
        return fail(name, error)


if __name__ == "__main__":
    raise SystemExit(main())
