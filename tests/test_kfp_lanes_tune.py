"""tune(storage=...): tuning inside your own KFP pipeline as lanes over a shared PostgreSQL store,
run by kfp.local's own SubprocessRunner (lightweight components only; the lane steps call the real
``hp-tune step lane-*``).

(No ``from __future__ import annotations``: KFP reads the components' annotations.)
"""

import pytest

kfp = pytest.importorskip("kfp")

from hp_components.kfp._lanes import PASSWORD_ENV  # noqa: E402
from hp_components.store import ExperimentStore  # noqa: E402
from tests.lanes_store import postgres_database, split_password  # noqa: E402

URL = "postgresql+psycopg://hp@db.example:5432/hp"


@pytest.fixture
def pg():
    yield from postgres_database()


# --------------------------------------------------------------------------- tune(storage=...) in your pipeline


def test_tune_in_a_pipeline_runs_as_lanes_and_records_a_raising_trial(tmp_path, pg, monkeypatch):
    """tune(storage=...) under kfp.local's own SubprocessRunner (lightweight components only): the
    training function raising is a recorded Failed trial (catch_failures), the lanes go on."""
    from kfp import dsl, local

    from hp_components.kfp import tune

    bare, password = split_password(pg)
    monkeypatch.setenv(PASSWORD_ENV, password)
    monkeypatch.chdir(tmp_path)
    import os
    import sys

    # the step image has hp-tune on its PATH; here it is this interpreter's
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))

    @dsl.component
    def train(opt: str) -> float:
        if opt == "raise":
            raise RuntimeError("diverged")
        return {"a": 0.3, "b": 0.9, "c": 0.5}[opt]

    @dsl.pipeline
    def user_pipeline() -> dict:
        t = tune(train, parameters={"opt": ["a", "raise", "b", "c"]}, objective="acc", algorithm="grid",
                 max_trial_count=4, parallel_trial_count=2, storage=bare, storage_secret="hp-db")
        return t.outputs["best_parameters"]

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    assert user_pipeline().output == {"opt": "b"}
    from hp_components.kfp._api import search_experiment

    exp = search_experiment("train-tune", {"opt": ["a", "raise", "b", "c"]}, objective="acc", algorithm="grid",
                            max_trial_count=4, parallel_trial_count=2)
    trials = {t.assignments["opt"]: t for t in ExperimentStore(pg, exp).history()}
    assert sorted(trials) == ["a", "b", "c", "raise"] and trials["raise"].condition == "Failed"
    assert all(t.finished for t in trials.values())


def test_tune_refuses_lanes_with_a_metrics_artifact():
    from kfp import dsl

    from hp_components.kfp import KfpError, tune

    @dsl.component
    def train(lr: float, metrics: dsl.Output[dsl.Metrics]) -> None:
        metrics.log_metric("acc", lr)

    with pytest.raises(KfpError, match="metrics_output"):
        @dsl.pipeline
        def p() -> None:
            tune(train, parameters={"lr": (0.1, 1.0)}, objective="acc", max_trial_count=2,
                 metrics_output="metrics", storage=URL)
