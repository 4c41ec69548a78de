"""The local driver (``--target local``): this machine's runner behind the Driver interface.

``compile`` writes the experiment as it runs here (Katib's defaults filled in), ``submit`` runs it to the
end in the store (like ``hp-tune run``) and names it, ``status`` reads it back from the store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hp_components.drivers import Driver
from hp_components.experiment import Experiment, parse_experiment
from hp_components.local import run_local
from hp_components.status import experiment_status
from hp_components.steps import status_summary
from hp_components.store import DEFAULT_STORAGE, load_stored, open_existing

__all__ = ["LocalDriver"]


class LocalDriver(Driver):
    """Trials as subprocesses of this machine, state in an experiment store (SQLite by default)."""

    name = "local"
    options = {
        "storage": f"the experiment store, an SQLAlchemy URL (default {DEFAULT_STORAGE})",
        "workdir": "the folder trials run in (default: the current one)",
        "run_dir": "where trial folders go (default hp-runs)",
    }

    def compile(self, exp: Experiment, output: Path, *, image: str | None = None, **options: Any) -> list[Path]:
        self.check_options(options)
        output = Path(output)
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(exp.to_yaml(), encoding="utf-8")
        return [output]

    def submit(self, exp: Experiment, *, image: str | None = None, namespace: str | None = None, **options: Any) -> str:
        run_local(exp, **self.check_options(options))
        return exp.name

    def status(self, run: str, *, namespace: str | None = None, **options: Any) -> dict[str, Any]:
        url = self.check_options(options).get("storage", DEFAULT_STORAGE)
        open_existing(url, "--storage")  # reading only: a mistyped store is not created
        spec, trials = load_stored(url, run, "status")
        status = experiment_status(parse_experiment(spec), trials)
        best = status.best
        return {
            "name": run,
            "phase": status.condition,
            "done": status.done,
            "status": status_summary(status.to_dict()),
            "best": {"name": best.name, "parameters": dict(best.assignments), "objective": best.objective_value}
            if best else None,
            "trials": [{"name": t.name, "condition": t.condition, "objectiveValue": t.objective_value,
                        "parameters": dict(t.assignments)} for t in trials],
        }
