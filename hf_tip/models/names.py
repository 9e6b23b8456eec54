"""Class names: how they compare (as the prompts read them) and the checks of a list of them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


# ---------------------------------------------------------------------------------------------------- class names
def clean_class_name(name: str) -> str:
    """How class names compare: as the prompts read them (`_` is a space), ignoring case and repeated whitespace."""
    return " ".join(str(name).replace("_", " ").split()).casefold()


def check_class_names(names, argument: str = "class_names") -> list[str]:
    """`names` as a list of strings; raises a `ValueError` for a single string (which would name one class per
    character), no names, an empty name, or two names that read the same in prompts (naming them and their
    positions), and a `TypeError` for a non-sequence."""
    if isinstance(names, (str, bytes)):
        raise ValueError(
            f"`{argument}` must be a list of class names, got the string {names!r} (which would make one class per "
            f"character); for one class write [{names!r}]."
        )
    if not isinstance(names, (Sequence, np.ndarray)):
        raise TypeError(f"`{argument}` must be a list of class names, got {type(names).__name__} {names!r}.")
    names = [str(name) for name in names]
    if not names:
        raise ValueError(f"`{argument}` must name at least one class.")
    empty = [i for i, name in enumerate(names) if not clean_class_name(name)]
    if empty:
        raise ValueError(f"`{argument}` has empty name(s) at position(s) {empty}: {names}.")
    seen: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        seen.setdefault(clean_class_name(name), []).append(i)
    repeated = {names[ids[0]]: ids for ids in seen.values() if len(ids) > 1}
    if repeated:
        raise ValueError(
            f"`{argument}` names a class more than once, so it would be duplicated in `id2label`: {list(repeated)} "
            f"(positions {repeated}; names compare as the prompts read them: `_` as a space, ignoring case). "
            "Give each class one distinct name."
        )
    return names
