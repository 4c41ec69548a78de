"""``hp-tune import``: a pipeline run's history (what the collect step writes on KFP and Argo) in a store.

The history is made by the real steps (``hp-tune step suggest`` / ``step collect``, as a KFP or Argo
pod runs them) from observations shaped as the trial wrapper writes them, intermediate values
included; then report and Optuna (what optuna-dashboard reads) see the run as a local one.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "random-digits.yaml"


def _hp(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hp_components.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def _pipeline_history(tmp_path: Path) -> Path:
    """Two rounds of the real steps; trial i reports accuracy per epoch; the second round's last trial fails."""
    history = "[]"
    for rnd in range(2):
        res = _hp("step", "suggest", "--experiment", str(EXAMPLE), "--history", history, "--count", "3",
                  "--trials-out", "batch.json", cwd=tmp_path)
        assert res.returncode == 0, res.stderr
        batch = json.loads((tmp_path / "batch.json").read_text())
        obs = []
        for i, t in enumerate(batch):
            final = 0.5 + 0.1 * i + 0.01 * rnd
            curve = [[step, round(final * (step + 1) / 4, 4)] for step in range(4)]
            failed = rnd == 1 and i == 2
            obs.append({"name": t["name"], "condition": "Failed" if failed else "Succeeded",
                        "reason": "TrialFailed" if failed else "TrialSucceeded",
                        "message": "the training process ended with exit code 1" if failed else "",
                        "metrics": [{"name": "Validation-accuracy", "min": str(curve[0][1]), "max": str(final),
                                     "latest": str(final)}], "intermediateValues": curve})
        (tmp_path / "obs.json").write_text(json.dumps(obs))
        res = _hp("step", "collect", "--experiment", str(EXAMPLE), "--history", history, "--trials", "batch.json",
                  "--observations", "obs.json", "--history-out", "history.json", cwd=tmp_path)
        assert res.returncode == 0, res.stderr
        history = str(tmp_path / "history.json")
    return tmp_path / "history.json"


def test_a_pipeline_history_becomes_a_stored_experiment_with_its_curves(tmp_path: Path) -> None:
    path = _pipeline_history(tmp_path)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    res = _hp("import", str(EXAMPLE), "--history", str(path), "--storage", url, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "imported 6 trials of random-digits" in res.stdout
    study = optuna.load_study(study_name="random-digits", storage=url)
    assert study.metric_names == ["Validation-accuracy"]  # the dashboard's axis, not "Objective 0"
    states = [t.state for t in study.trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 5 and states.count(optuna.trial.TrialState.FAIL) == 1
    first = study.trials[0]
    assert sorted(first.intermediate_values) == [0, 1, 2, 3] and first.value == pytest.approx(0.5)
    history = json.loads(path.read_text())
    assert len(history) == 6
    for record, trial in zip(history, study.trials):  # the same parameter values, as Optuna holds them
        for a in record["parameterAssignments"]:
            held = trial.params[a["name"]]
            assert (float(a["value"]) == pytest.approx(held)) if isinstance(held, (int, float)) else a["value"] == held
    md = _hp("report", str(EXAMPLE), "--storage", url, "--format", "markdown", cwd=tmp_path)
    assert md.returncode == 0, md.stderr
    assert "random-digits-0004" in md.stdout and "0.61" in md.stdout
    # the KFP state artifact holds the history under "history"
    (tmp_path / "state.json").write_text(json.dumps({"history": history, "status": {}}))
    res = _hp("import", str(EXAMPLE), "--history", "state.json", "--storage", url, "--fresh", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert len(optuna.load_study(study_name="random-digits", storage=url).trials) == 6


def test_importing_twice_or_a_broken_history_is_bad_input(tmp_path: Path) -> None:
    path = _pipeline_history(tmp_path)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    assert _hp("import", str(EXAMPLE), "--history", str(path), "--storage", url, cwd=tmp_path).returncode == 0
    again = _hp("import", str(EXAMPLE), "--history", str(path), "--storage", url, cwd=tmp_path)
    assert again.returncode == 2 and "already has trials" in again.stderr and "--fresh" in again.stderr
    (tmp_path / "bad.json").write_text("{oops")
    for content, message in (("{oops", "not JSON"), ('{"a": 1}', "not a pipeline history"),
                             (json.dumps([{"name": "x-0000", "condition": "Running", "parameterAssignments": []}]),
                              "finished trials only")):
        (tmp_path / "bad.json").write_text(content)
        res = _hp("import", str(EXAMPLE), "--history", "bad.json", "--storage", f"sqlite:///{tmp_path / 'b.db'}",
                  cwd=tmp_path)
        assert res.returncode == 2 and message in res.stderr and "Traceback" not in res.stderr, res.stderr
    res = _hp("import", str(EXAMPLE), "--history", "missing.json", "--storage", url, cwd=tmp_path)
    assert res.returncode == 2 and "cannot read" in res.stderr
