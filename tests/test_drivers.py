"""One contract suite over every driver (hp_components.drivers), as Optuna runs one suite over every
storage. Local runs for real; Argo goes through the fake Argo Server of tests/test_argo.py (its contract is
written there); KFP compiles with the real kfp compiler."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hp_components.drivers import BUILTIN, STATUS_KEYS, Driver, DriverError, available, get_driver
from hp_components.experiment import parse_experiment
from tests.conftest import ROOT, script_experiment
from tests.test_argo import _Fake, _finished, fake_server  # noqa: F401  (the fixture)
from tests.test_kfp_status import api, fixture_run  # noqa: F401  (the fake KFP API and ML Metadata)

NAMES = sorted(BUILTIN)
#: an option each driver takes, with a value (what the contract checks it accepts)
OWN = {"local": ("storage", "sqlite:///{tmp}/own.db"), "kfp": ("host", "http://127.0.0.1:1"),
       "argo": ("argo_server", "http://127.0.0.1:1")}


def tiny() -> dict:
    return script_experiment("drv", "import sys; print('loss=' + sys.argv[1][4:])", maxTrialCount=2,
                             parallelTrialCount=2)


@pytest.mark.parametrize("name", NAMES)
def test_each_driver_is_a_driver_named_as_registered(name):
    driver = get_driver(name)
    assert isinstance(driver, Driver) and driver.name == name
    assert OWN[name][0] in driver.options and all(driver.options.values())  # each option says what it means


@pytest.mark.parametrize("name", NAMES)
def test_each_driver_refuses_an_option_it_does_not_take_by_name(name, tmp_path):
    driver = get_driver(name)
    other = next(o for n, (o, _) in OWN.items() if o not in driver.options)
    with pytest.raises(DriverError, match=f"--{other.replace('_', '-')}: not an option of --target {name} "
                                          r"\(its options: "):
        driver.compile(parse_experiment(tiny()), tmp_path / "out.yaml", **{other: "x"})
    option, value = OWN[name]
    assert driver.check_options({option: value, "token": None}) == {option: value}  # None = not given


@pytest.mark.parametrize("name", NAMES)
def test_each_driver_compiles_to_files_it_names(name, tmp_path):
    written = get_driver(name).compile(parse_experiment(tiny()), tmp_path / "c" / "out.yaml", image="example/hp:1")
    assert written and written[0] == tmp_path / "c" / "out.yaml"
    for path in written:
        assert yaml.safe_load(path.read_text())
    text = written[0].read_text()
    assert "example/hp:1" in text or name == "local"  # the given image reaches the engine's steps


def _status_contract(st: dict) -> None:
    assert set(STATUS_KEYS) <= set(st)
    assert st["done"] is True and st["best"]["name"] and st["trials"]
    for t in st["trials"]:
        assert {"name", "condition", "objectiveValue", "parameters"} <= set(t)


def test_local_submit_then_status(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    driver = get_driver("local")
    storage = f"sqlite:///{tmp_path}/hp.db"
    run = driver.submit(parse_experiment(tiny()), storage=storage, run_dir=str(tmp_path / "runs"))
    st = driver.status(run, storage=storage)
    _status_contract(st)
    assert st["status"]["condition"] == "Succeeded" and len(st["trials"]) == 2
    with pytest.raises(ValueError, match="status: no experiment named 'nope'"):
        driver.status("nope", storage=storage)


def test_argo_submit_then_status(fake_server, basic_dict):  # noqa: F811
    driver = get_driver("argo")
    exp = parse_experiment(basic_dict)
    run = driver.submit(exp, namespace="ml", argo_server=fake_server, token="t")
    _finished(_Fake.workflows[run])
    _status_contract(driver.status(run, namespace="ml", argo_server=fake_server, token="t"))


class _ThirdEngine(Driver):
    name = "third"
    options = {"where": "somewhere"}

    def compile(self, exp, output, *, image=None, **options):
        self.check_options(options)
        Path(output).write_text(exp.to_yaml())
        return [Path(output)]

    def submit(self, exp, *, image=None, namespace=None, **options):
        return exp.name

    def status(self, run, *, namespace=None, **options):
        return {k: None for k in STATUS_KEYS}


def test_a_third_engine_is_one_entry_point(monkeypatch):
    ep = importlib.metadata.EntryPoint("third", f"{__name__}:_ThirdEngine", "hp_components.drivers")
    real = importlib.metadata.entry_points
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda **kw: [ep] if kw.get("group") == "hp_components.drivers" else real(**kw))
    assert available()["third"] == f"{__name__}:_ThirdEngine"
    assert isinstance(get_driver("third"), _ThirdEngine)
    with pytest.raises(DriverError, match="--target must be one of argo, kfp, local, third, not 'tekton'"):
        get_driver("tekton")


def test_the_cli_names_the_driver_and_its_options(tmp_path):
    spec = tmp_path / "e.yaml"
    spec.write_text(yaml.safe_dump(tiny()))
    cli = [sys.executable, "-m", "hp_components.cli"]
    done = subprocess.run([*cli, "status", "x", "--target", "tekton"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 2 and "--target must be one of argo, kfp, local" in done.stderr
    done = subprocess.run([*cli, "submit", str(spec), "--target", "kfp", "--argo-server", "http://x"],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 2 and "--argo-server: not an option of --target kfp (its options: --host, --token, --lanes, --storage, --storage-secret)" in done.stderr
    done = subprocess.run([*cli, "compile", str(spec), "--target", "local", "-o", str(tmp_path / "out.yaml")],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert parse_experiment(yaml.safe_load((tmp_path / "out.yaml").read_text())).spec.parallel_trial_count == 2


def test_kfp_status_keeps_the_drivers_keys(api):
    """The KFP run API and ML Metadata (tests/test_kfp_status.py has their contract): the common keys
    are there, each trial a row, and the best trial as {name, parameters, objective}."""
    st = get_driver("kfp").status("3f1c-run", host=api["host"])
    assert set(STATUS_KEYS) <= set(st) and st["done"] is False
    assert set(st["best"]) == {"name", "parameters", "objective"} and st["best"]["parameters"]
    assert {"name", "condition", "objectiveValue", "parameters"} <= set(st["trials"][0])
