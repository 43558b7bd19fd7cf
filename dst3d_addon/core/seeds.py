"""Deterministic seeds: every random choice of a view derives from (run seed, class, model, view).

Seeds come from a cryptographic hash of their labels, not from a shared generator, so a view gets
the same seed whatever the order, sharding or resuming of the run. They stay below 2**53 so that
every JSON reader (JavaScript included) reads them back exactly.
"""

from __future__ import annotations

import hashlib

import numpy as np

SEED_BITS = 53


def derive_seed(*labels: object) -> int:
    """A seed in [0, 2**53) from any sequence of labels (ints and strings)."""
    text = "\x1f".join(str(label) for label in labels).encode("utf-8")
    digest = hashlib.blake2b(text, digest_size=8, person=b"dst3d-seed").digest()
    return int.from_bytes(digest, "little") >> (64 - SEED_BITS)


def view_seed(run_seed: int, class_key: str, model_id: str, view_index: int) -> int:
    """The seed of one rendered view (dataset-format.md)."""
    return derive_seed("view", int(run_seed), class_key, model_id, int(view_index))


def rng(seed: int) -> np.random.Generator:
    """The generator every random draw of one seed comes from."""
    return np.random.Generator(np.random.PCG64(int(seed)))
