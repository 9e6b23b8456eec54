"""The stages every command composes: encode, fit, search, score, compare."""
