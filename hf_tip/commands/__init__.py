"""Sub-commands of the `hf-tip` CLI, one module each (see `hf_tip.cli` for what a command module defines)."""
