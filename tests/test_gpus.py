"""The local runner's GPU pool: no two trials share a GPU, and a trial that asks for more than the
machine has is refused before anything runs."""

from __future__ import annotations

import pytest

from hp_components._gpus import GpuPool


def test_trials_take_gpus_of_their_own_and_give_them_back():
    pool = GpuPool(["0", "1", "2"], need=2)
    assert pool.slots() == 1
    first = pool.take(2)
    assert first == ["0", "1"] and pool.slots() == 0 and pool.take(2) is None
    pool.give(first)
    assert pool.slots() == 1 and pool.take(2) == ["2", "0"]


def test_no_gpus_means_no_limit_and_one_warning():
    said: list[str] = []
    pool = GpuPool([], need=1, warn=said.append)
    assert pool.slots() is None
    assert pool.take(1) == [] and pool.take(1) == []
    assert said == ["trials ask for nvidia.com/gpu: 1, but this machine has no GPU; they run on the CPU"]
    assert GpuPool(["0"], need=0).take(0) == [] and GpuPool(["0"], need=0).slots() is None


def test_a_trial_needing_more_gpus_than_the_machine_has_is_refused():
    with pytest.raises(ValueError, match="nvidia.com/gpu: 3, but this machine has 2 GPUs"):
        GpuPool(["0", "1"], need=3)
