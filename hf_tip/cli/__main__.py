"""`python -m hf_tip.cli` (what `accelerate launch -m hf_tip.cli` runs)."""

from . import main

raise SystemExit(main())
