"""The remote-code closure: every file here travels with a saved model (`from .sibling import` only, no sub-folders)."""
