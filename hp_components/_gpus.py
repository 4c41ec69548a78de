"""The machine's GPUs, handed to local trials so that no two share one (``CUDA_VISIBLE_DEVICES``)."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Callable

__all__ = ["GpuPool", "detect_gpus"]


def detect_gpus() -> list[str]:
    """GPU ids for trials: ``HP_GPUS``, else ``CUDA_VISIBLE_DEVICES``, else ``nvidia-smi``, else none."""
    for var in ("HP_GPUS", "CUDA_VISIBLE_DEVICES"):
        if var in os.environ:
            return [g.strip() for g in os.environ[var].split(",") if g.strip() and g.strip() != "-1"]
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=20, check=True,
            ).stdout
        except (OSError, subprocess.SubprocessError):
            return []
        return [line.strip() for line in out.splitlines() if line.strip()]
    return []


class GpuPool:
    """Free GPU ids; each trial takes ``need`` of its own and gives them back when it ends.

    >>> pool = GpuPool(["0", "1", "2"], need=2)
    >>> pool.slots(), pool.take(2), pool.slots()
    (1, ['0', '1'], 0)
    """

    def __init__(self, ids: list[str], need: int, warn: Callable[[str], None] = lambda message: None):
        self.free = list(ids)
        self.total = len(ids)
        self.need = need
        self.warn = warn
        self.warned = False
        if self.total and need > self.total:
            raise ValueError(f"each trial asks for nvidia.com/gpu: {need}, but this machine has {self.total} GPUs")

    def slots(self) -> int | None:
        """How many more trials the free GPUs allow (None: no limit from GPUs)."""
        if self.need <= 0 or not self.total:
            return None
        return len(self.free) // self.need

    def take(self, n: int) -> list[str] | None:
        """``n`` GPUs for one trial ([] without GPUs, warning once); None when fewer are free."""
        if n <= 0:
            return []
        if not self.total:
            if not self.warned:
                self.warned = True
                self.warn(f"trials ask for nvidia.com/gpu: {n}, but this machine has no GPU; they run on the CPU")
            return []
        if len(self.free) < n:
            return None
        taken, self.free = self.free[:n], self.free[n:]
        return taken

    def give(self, ids: list[str]) -> None:
        self.free += ids
