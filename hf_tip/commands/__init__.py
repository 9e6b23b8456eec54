"""Sub-commands of the `hf-tip` CLI: each module defines `add_arguments(parser)` and `run(args)`."""
