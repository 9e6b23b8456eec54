"""hf-tip's one seeding scheme: SplitMix64 streams, identical across NumPy versions and processes."""

from __future__ import annotations

import hashlib

import numpy as np
import torch

# ---------------------------------------------------------------------------------------------------------- seeding
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _splitmix64(values: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser on uint64 arrays: a fixed bijection, the same on every machine and NumPy version."""
    with np.errstate(over="ignore"):
        values = (values ^ (values >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        values = (values ^ (values >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return values ^ (values >> np.uint64(31))


def _stream_word(part: int | str) -> np.uint64:
    """A stream label as one uint64: an integer modulo 2**64, a string by the first 8 bytes of its SHA-256."""
    if isinstance(part, str):
        return np.uint64(int.from_bytes(hashlib.sha256(part.encode()).digest()[:8], "little"))
    if isinstance(part, (bool, float)) or not isinstance(part, (int, np.integer)):
        raise TypeError(f"A seed stream is made of integers and strings, got {part!r}.")
    return np.uint64(int(part) % 2**64)


def _stream_base(seed: int, stream: tuple[int | str, ...]) -> np.ndarray:
    """The uint64 state [1] of stream `(seed, *stream)`; the empty stream is the few-shot sampler's."""
    base = _splitmix64(np.array([_stream_word(seed)], dtype=np.uint64) + _GOLDEN)
    with np.errstate(over="ignore"):
        for part in stream:
            base = _splitmix64((base ^ _stream_word(part)) + _GOLDEN)
    return base


def shuffle_keys(indices: np.ndarray, seed: int, *stream: int | str) -> np.ndarray:
    """A seeded pseudo-random uint64 key per example index (distinct indices get distinct keys); sorting by key is a
    seeded shuffle that depends only on `(seed, *stream, index)`: not on NumPy's generator algorithms, the platform or
    the other examples.

    This is hf-tip's one seeding scheme (SplitMix64): few-shot sampling (`shuffle_keys(indices, seed)`), evaluation
    subsets, carved splits (`"split"`), Tip-Adapter-F's epoch order (`"epoch", epoch`) and each augmented view
    (`"view", view, index`, through [`seeded_generator`]) are streams of it, so none depends on another's draws.
    """
    return _splitmix64(_stream_base(seed, stream) ^ np.asarray(indices, dtype=np.uint64))


def seeded_permutation(n: int, seed: int, *stream: int | str) -> list[int]:
    """A seeded permutation of `range(n)`: the indices sorted by `shuffle_keys(index, seed, *stream)`."""
    return np.argsort(shuffle_keys(np.arange(n), seed, *stream), kind="stable").tolist()


def seeded_generator(seed: int, *stream: int | str) -> torch.Generator:
    """A `torch.Generator` seeded from stream `(seed, *stream)` of [`shuffle_keys`]'s scheme."""
    state = int(_stream_base(seed, stream)[0])
    return torch.Generator().manual_seed(state & 0x7FFF_FFFF_FFFF_FFFF)
