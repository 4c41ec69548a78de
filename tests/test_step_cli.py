"""``hp-tune step suggest|collect`` run without typer, rich or SQLAlchemy, and answer as the CLI's commands do.

The console script (hp_components._entry) hands the two pipeline steps to hp_components._step_cli;
these tests run the installed ``hp-tune`` script as a real process and check every output it writes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hp_components.cli import main as cli_main

ROOT = Path(__file__).resolve().parent.parent
HP_TUNE = Path(sys.executable).parent / "hp-tune"
EXAMPLE = ROOT / "examples" / "random-digits.yaml"


def _hp_tune(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(HP_TUNE), *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def _observations(batch: list[dict]) -> list[dict]:
    return [{"name": t["name"], "condition": "Succeeded", "metrics": [
        {"name": "Validation-accuracy", "min": str(0.5 + i / 10), "max": str(0.5 + i / 10), "latest": str(0.5 + i / 10)}]}
        for i, t in enumerate(batch)]


@pytest.fixture(scope="module")
def script() -> Path:
    if not HP_TUNE.exists():
        pytest.skip("the hp-tune console script is not installed next to this Python (pip install -e .)")
    text = HP_TUNE.read_text()
    assert "hp_components._entry" in text, "reinstall (pip install -e .): hp-tune must start hp_components._entry"
    return HP_TUNE


def test_suggest_and_collect_write_every_output_through_the_script(script: Path, tmp_path: Path) -> None:
    suggest = ["step", "suggest", "--experiment", str(EXAMPLE), "--count", "3"]
    res = _hp_tune(*suggest, "--trials-out", "b.json", "--params-out", "p.json", "--items-out", "i.json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    batch = json.loads((tmp_path / "b.json").read_text())
    assert len(batch) == 3 and all(t["parameterAssignments"] and "parameters" in t for t in batch)
    assert [t["name"] for t in json.loads((tmp_path / "p.json").read_text())] == [t["name"] for t in batch]
    items = json.loads((tmp_path / "i.json").read_text())
    assert [i["hp-trial-name"] for i in items] == [t["name"] for t in batch]
    assert all(isinstance(v, str) for i in items for v in i.values())  # flat: Argo's {{item.K}} reaches each
    (tmp_path / "obs.json").write_text(json.dumps(_observations(batch)))
    outs = ["history-out", "status-out", "done-out", "best-out", "summary-out", "next-trials-out", "next-params-out",
            "next-items-out", "best-parameters-out", "objective-out"]
    collect = ["step", "collect", "--experiment", str(EXAMPLE), "--trials", "b.json", "--observations", "obs.json"]
    res = _hp_tune(*collect, *[x for o in outs for x in (f"--{o}", o)], cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    read = {o: (tmp_path / o).read_text() for o in outs}
    assert len(json.loads(read["history-out"])) == 3 and read["done-out"] == "false"
    assert json.loads(read["status-out"])["trials"] == 3 and json.loads(read["summary-out"])["trials"] == 3
    assert json.loads(read["best-out"])["objective"] == pytest.approx(0.7) == float(read["objective-out"])
    assert json.loads(read["best-parameters-out"]) == json.loads(read["best-out"])["parameters"]
    assert len(json.loads(read["next-trials-out"])) == len(json.loads(read["next-items-out"])) == 3
    # nothing asked for: the whole result on stdout
    res = _hp_tune(*collect, cwd=tmp_path)
    assert res.returncode == 0 and set(json.loads(res.stdout)) >= {"history", "status", "done", "best", "next"}


def test_the_steps_import_neither_typer_rich_nor_sqlalchemy(script: Path, tmp_path: Path) -> None:
    probe = ("import sys; from hp_components._entry import main; "
             f"code = main(['step', 'suggest', '--experiment', {str(EXAMPLE)!r}, '--trials-out', 'b.json']); "
             "print(sorted({m.split('.')[0] for m in sys.modules} & {'typer', 'click', 'rich', 'sqlalchemy', 'alembic', "
             "'hp_components.cli', 'hp_components.store'}), code)")
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["[]", "0"]
    assert len(json.loads((tmp_path / "b.json").read_text())) == 3
    loaded = subprocess.run([sys.executable, "-c", "import sys, hp_components.cli; print('typer' in sys.modules)"],
                            capture_output=True, text=True, timeout=120)
    assert loaded.stdout.strip() == "True"  # the probe would see typer if the fast path used the CLI


def test_the_steps_import_only_what_they_use(tmp_path: Path) -> None:
    """Every suggest and collect pod pays its imports: with the Experiment as inline JSON (as the compiled
    pipelines hand it) neither PyYAML, pydantic nor scipy.stats is loaded, at history 0 with the GP's Sobol
    design (``auto``) and later with multivariate TPE; the CLI's libraries never are."""
    from hp_components.experiment import load_experiment
    from hp_components.trials import Trial, dump_history

    data = load_experiment(EXAMPLE).to_dict()
    data["spec"].update(algorithm={"algorithmName": "auto"}, maxTrialCount=500)
    exp = json.dumps(data)
    space = {p["name"]: p["feasibleSpace"] for p in data["spec"]["parameters"]}
    history = [Trial(name=f"t-{i}", assignments={n: str(f.get("min") or f["list"][0]) for n, f in space.items()},
                     condition="Succeeded", objective_value=0.5) for i in range(120)]
    (tmp_path / "h.json").write_text(dump_history(history))
    banned = {"yaml", "pydantic", "scipy.stats", "typer", "rich", "sqlalchemy", "hp_components.cli", "hp_components.store"}
    for history_arg in ("", str(tmp_path / "h.json")):
        probe = [sys.executable, "-X", "importtime", "-m", "hp_components._entry", "step", "suggest", "--experiment", exp,
                 "--history", history_arg, "--count", "4", "--trials-out", str(tmp_path / "b.json")]
        res = subprocess.run(probe, capture_output=True, text=True, cwd=tmp_path, timeout=120)
        assert res.returncode == 0, res.stderr[-2000:]
        imported = {line.split("|")[-1].strip() for line in res.stderr.splitlines() if line.startswith("import time:")}
        assert "hp_components.steps" in imported and not banned & imported, banned & imported
        assert len(json.loads((tmp_path / "b.json").read_text())) == 4


@pytest.mark.parametrize("args, message", [
    (["step", "suggest", "--experiment", "missing.yaml"], "error: --experiment"),
    (["step", "suggest", "--experiment", str(EXAMPLE), "--history", "[oops"], "error: --history: not valid JSON"),
    (["step", "suggest", "--experiment", str(EXAMPLE), "--history", "nope.json"], "error: --history: cannot read nope.json"),
    (["step", "suggest", "--experiment", str(EXAMPLE), "--count", "three"], "--count: invalid int value: 'three'"),
    (["step", "suggest", "--experiment", str(EXAMPLE), "--cout", "3"], "unrecognized arguments: --cout 3"),
    (["step", "suggest"], "the following arguments are required: --experiment"),
    (["step", "collect", "--experiment", str(EXAMPLE), "--trials", "[oops"], "error: --trials: not valid JSON"),
    (["step", "collect", "--experiment", str(EXAMPLE), "--trials", '{"a": 1}'],
     "error: --trials must be a JSON list and --observations a JSON list or object"),
    (["step", "collect", "--experiment", '{"apiVersion": "kubeflow.org/v1beta1"}'], "error: --experiment: "),
])
def test_bad_input_exits_2_with_the_field(script: Path, tmp_path: Path, args: list[str], message: str) -> None:
    res = _hp_tune(*args, cwd=tmp_path)
    assert res.returncode == 2, (res.returncode, res.stderr)
    assert message in res.stderr and "Traceback" not in res.stderr


def test_help_and_other_commands_go_to_the_cli(script: Path, tmp_path: Path) -> None:
    res = _hp_tune("step", "suggest", "--help", cwd=tmp_path)
    assert res.returncode == 0 and "--items-out" in res.stdout and "usage: hp-tune step suggest" in res.stdout
    res = _hp_tune("validate", str(EXAMPLE), cwd=tmp_path)
    assert res.returncode == 0 and "valid" in res.stdout
    res = _hp_tune("step", "launch", cwd=tmp_path)  # a usage error: missing options, exit 2
    assert res.returncode == 2 and "--experiment" in res.stderr and "Traceback" not in res.stderr
    res = _hp_tune("--help", cwd=tmp_path)
    assert res.returncode == 0 and "suggest, collect, launch" in res.stdout
    assert cli_main(["step", "suggest", "--experiment", "missing.yaml"]) == 2  # cli.main hands steps over too


def test_python_m_cli_takes_the_same_path(tmp_path: Path) -> None:
    probe = [sys.executable, "-X", "importtime", "-m", "hp_components.cli", "step", "suggest", "--experiment",
             str(EXAMPLE), "--trials-out", str(tmp_path / "b.json")]
    res = subprocess.run(probe, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in res.stderr.splitlines() if line.startswith("import time:")}
    assert "hp_components.steps" in imported and not {"typer", "rich", "sqlalchemy"} & imported
    assert len(json.loads((tmp_path / "b.json").read_text())) == 3
