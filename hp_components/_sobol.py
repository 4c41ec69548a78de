"""SciPy's scrambled Sobol sequence, point for point, without importing ``scipy.stats``.

``scipy.stats.qmc.Sobol(d, scramble=True, seed=s)`` is the design of ``sobol`` and of the GP's
initial points, but importing ``scipy.stats`` takes about half a second, paid by every suggest
pod at history 0. This draws the same points with numpy alone: SciPy's Joe-Kuo direction numbers
(read from the ``.npz`` file SciPy ships), its linear matrix scramble and digital shift drawn in
the same order from ``numpy.random.default_rng(s)``, and the Gray-code order of its ``random`` and
``fast_forward``. tests/test_algorithms.py compares it with SciPy's engine; should SciPy move
its data file, :func:`sobol` falls back to that engine::

    from hp_components._sobol import sobol
    points = sobol(d=3, seed=7, skip=8, count=4)   # == qmc.Sobol(3, seed=7) fast-forwarded 8, .random(4)
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np

__all__ = ["sobol"]

#: SciPy's default precision: points are multiples of 2**-30
BITS = 30


def _direction_file() -> Path | None:
    spec = importlib.util.find_spec("scipy")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "stats" / "_sobol_direction_numbers.npz"
    return path if path.is_file() else None


def _directions(d: int, path: Path) -> np.ndarray:
    """The unscrambled direction numbers ``v[dim, bit]`` (SciPy's ``_initialize_v``, Bratley and Fox's recurrence)."""
    with np.load(path) as numbers:
        poly, vinit = numbers["poly"][:d].tolist(), numbers["vinit"][:d].tolist()
    v = np.ones((d, BITS), dtype=np.int64)
    for k in range(1, d):
        p = int(poly[k])
        m = p.bit_length() - 1
        row = [int(x) for x in vinit[k][:m]]
        for j in range(m, BITS):
            new = row[j - m]
            for i in range(m):
                if (p >> (m - 1 - i)) & 1:
                    new ^= row[j - i - 1] << (i + 1)
            row.append(new)
        v[k] = row
    return v << np.arange(BITS - 1, -1, -1, dtype=np.int64)


def _scipy_sobol(d: int, seed: int, skip: int, count: int) -> np.ndarray:
    from scipy.stats import qmc

    engine = qmc.Sobol(d=d, scramble=True, seed=seed)
    if skip:
        engine.fast_forward(skip)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy prefers powers of two; any count is fine here
        return engine.random(count)


def sobol(d: int, seed: int, skip: int, count: int) -> np.ndarray:
    """Points ``skip`` .. ``skip + count - 1`` (an array ``[count, d]`` in [0, 1)) of SciPy's scrambled
    Sobol sequence in ``d`` dimensions for ``seed``."""
    path = _direction_file()
    if path is None or count <= 0 or skip + count > 2**BITS:
        return _scipy_sobol(d, seed, skip, count)
    v = _directions(d, path)
    rng = np.random.default_rng(seed)
    # the digital shift, then the lower-triangular scramble matrices: SciPy's draws, in its order
    shift = rng.integers(2, size=(d, BITS), dtype=np.uint32).astype(np.int64) @ (1 << np.arange(BITS, dtype=np.int64))
    ltm = np.tril(rng.integers(2, size=(d, BITS, BITS), dtype=np.uint32).astype(np.int64))
    ltm[:, np.arange(BITS), np.arange(BITS)] = 1
    top = np.arange(BITS - 1, -1, -1, dtype=np.int64)
    bits = (v[:, :, None] >> top) & 1  # bits[dim, j, k]: bit k, from the top, of v[dim, j]
    scrambled = ((np.einsum("djk,dpk->djp", bits, ltm) & 1) << top).sum(axis=2)
    index = np.arange(skip, skip + count, dtype=np.int64)
    gray = index ^ (index >> 1)  # point i is the shift xor the columns of the bits of i's Gray code
    points = np.broadcast_to(shift, (count, d)).copy()
    for b in range(BITS):
        points[((gray >> b) & 1).astype(bool)] ^= scrambled[:, b]
    return points * (1.0 / 2**BITS)
