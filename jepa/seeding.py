"""Stable seeding shared by data, masks and objectives: a neutral helper with no imports of its own.

Every random draw of a run (data order, crops, masks, views) is seeded by hashing integers such as
(seed, step, sample index), so a resumed run, another worker count or another rank layout draws
exactly the same values.
"""

from __future__ import annotations

_MASK64 = (1 << 64) - 1


def mix_seed(*values: int) -> int:
    """Hashes integers into one 64-bit seed (splitmix64 finaliser), stable across processes."""
    h = 0x9E3779B97F4A7C15
    for v in values:
        h = (h ^ (v & _MASK64)) & _MASK64
        h = (h + 0x9E3779B97F4A7C15) & _MASK64
        h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & _MASK64
        h ^= h >> 31
    return h
