"""Seeds derived from a run's seed: one function for every random stream.

``derive_seed(seed, "degrade", rank, step)`` is a pure function of its parts, 63 bits wide (what
``torch.Generator.manual_seed`` and NumPy take), and unrelated for different parts, also in the low
32 bits. Nothing here touches a global random state (DESIGN rule 2).

The ``scheme`` keeps three encodings because their values are pinned: a changed value would move
training streams (and resumed runs) or the degradation's same-bytes guarantees.

* ``"sha256"`` (the default; use it for anything new): SHA-256 of the parts joined by ``/``, its
  first 8 bytes little-endian, top bit cleared. The training streams (init, loader, data order,
  degradation, pool, validation) and the paired dataset (``"paired", seed, epoch, index``).
* ``"blake2b"``: BLAKE2b-64 of the parts joined by ``:``, shifted right by one. The degradation's
  per-sample noise generators (``noise_seed, sample`` and ``noise_seed, "gray"``).
* ``"splitmix64"``: exactly three integers ``(seed, epoch, index)``, mixed arithmetically and
  finished by splitmix64. The HR dataset's crop and flip per item, and ``resrgan degrade``.
"""

from __future__ import annotations

import hashlib
from typing import Literal

SeedScheme = Literal["sha256", "blake2b", "splitmix64"]

_MASK63 = (1 << 63) - 1
_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15  # splitmix64's increment


def derive_seed(*parts: object, scheme: SeedScheme = "sha256") -> int:
    """A 63-bit seed that is a pure function of ``parts`` (see the module doc for ``scheme``)."""
    if scheme == "sha256":
        digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
        return int.from_bytes(digest[:8], "little") & _MASK63
    if scheme == "blake2b":
        digest = hashlib.blake2b(":".join(str(p) for p in parts).encode(), digest_size=8).digest()
        return int.from_bytes(digest, "little") >> 1
    if scheme == "splitmix64":
        if len(parts) != 3 or not all(isinstance(p, int) for p in parts):
            raise TypeError(f"splitmix64 seeds take (seed, epoch, index) integers, got {parts!r}")
        seed, epoch, index = parts
        x = ((seed * 1_000_003 + epoch) * 1_000_033 + index + _GOLDEN) & _MASK64  # type: ignore[operator]
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
        return (x ^ (x >> 31)) & _MASK63
    raise ValueError(f"scheme: {scheme!r} is not one of sha256, blake2b, splitmix64")
