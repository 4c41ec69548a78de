"""hp_components._sobol draws SciPy's scrambled Sobol points without importing scipy.stats."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
from scipy.stats import qmc

from hp_components import _sobol


def _scipy(d: int, seed: int, skip: int, count: int) -> np.ndarray:
    engine = qmc.Sobol(d=d, scramble=True, seed=seed)
    if skip:
        engine.fast_forward(skip)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return engine.random(count)


@pytest.mark.parametrize("d", [1, 2, 6, 25])
@pytest.mark.parametrize("seed", [0, 7, 2**31 + 5])
@pytest.mark.parametrize("skip,count", [(0, 1), (0, 10), (3, 5), (8, 8), (1000, 17)])
def test_same_points_as_scipy(d: int, seed: int, skip: int, count: int) -> None:
    assert _sobol._direction_file() is not None  # the numpy path runs, not the fallback
    assert np.array_equal(_sobol.sobol(d, seed, skip, count), _scipy(d, seed, skip, count))


def test_falls_back_to_scipy_without_the_data_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_sobol, "_direction_file", lambda: None)
    assert np.array_equal(_sobol.sobol(3, 1, 2, 4), _scipy(3, 1, 2, 4))


def test_does_not_import_scipy_stats() -> None:
    code = "import sys; from hp_components._sobol import sobol; sobol(6, 1, 0, 8); print('scipy.stats' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
