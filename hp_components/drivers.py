"""Drivers: where an experiment runs (``hp-tune --target NAME``), one interface for every engine.

A driver compiles an experiment for its engine, starts a run and reads a run's status. The built-in
ones are ``local`` (this machine), ``kfp`` (Kubeflow Pipelines v2) and ``argo`` (Argo Workflows); a
new engine (Tekton, Ray, ...) is one package that registers a :class:`Driver` subclass under the entry
point group ``hp_components.drivers``, as algorithms register under ``hp_components.algorithms``::

    # pyproject.toml of a plug-in
    [project.entry-points."hp_components.drivers"]
    tekton = "hp_tekton:TektonDriver"

    from hp_components.drivers import get_driver
    driver = get_driver("argo")
    driver.compile(exp, Path("wt.yaml"), image="registry.example/hp-components:0.1.0", kind="workflow")
    run = driver.submit(exp, namespace="ml")
    driver.status(run, namespace="ml")["best"]

Each driver declares its own options (:attr:`Driver.options`); :meth:`Driver.check_options` refuses any
other with a message naming the option and the driver's own, so no driver accepts another's options
only to refuse them. The contract every driver keeps is tested by one suite (tests/test_drivers.py).
"""

from __future__ import annotations

import abc
import importlib
import importlib.metadata
import re
from pathlib import Path
from typing import Any, ClassVar, Mapping

from hp_components.experiment import Experiment

__all__ = ["BUILTIN", "ENTRY_POINT_GROUP", "STATUS_KEYS", "Driver", "DriverError", "LaneStore", "available", "get_driver",
           "seconds"]

ENTRY_POINT_GROUP = "hp_components.drivers"
#: the drivers that come with hp-components: name -> "module:class" (imported on first use)
BUILTIN = {
    "local": "hp_components._local_driver:LocalDriver",
    "kfp": "hp_components.kfp._driver:KfpDriver",
    "argo": "hp_components.argo._driver:ArgoDriver",
}
#: the keys of every :meth:`Driver.status` answer
STATUS_KEYS = ("name", "phase", "done", "status", "best", "trials")


class DriverError(ValueError):
    """A driver cannot do what was asked (an unknown target or option, a missing extra)."""


class Driver(abc.ABC):
    """One engine. Subclasses set :attr:`name`, :attr:`extra`, :attr:`options` and the three methods.

    - :meth:`compile` writes what the engine runs; returns the files written.
    - :meth:`submit` starts a run of ``exp``; returns the run's id (what :meth:`status` takes).
    - :meth:`status` says where a run stands: a dict with :data:`STATUS_KEYS` (``phase``, ``done``,
      Katib's ``status`` summary, ``best`` ``{name, parameters, objective}`` and ``trials``, each
      ``{name, condition, objectiveValue, parameters}``).

    A spec the engine cannot run, or a bad option value, raises a ValueError naming the field.
    """

    name: ClassVar[str] = ""
    #: the pip extra the driver needs (``pip install 'hp-components[<extra>]'``), "" for none
    extra: ClassVar[str] = ""
    #: option name (as a keyword argument) -> what it means; shown by ``hp-tune`` as ``--option-name``
    options: ClassVar[Mapping[str, str]] = {}

    def check_options(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """The options that were given (None dropped); DriverError naming any this driver does not take."""
        chosen = {k: v for k, v in given.items() if v is not None}
        unknown = sorted(set(chosen) - set(self.options))
        if unknown:
            own = ", ".join(_flag(o) for o in self.options) or "none"
            raise DriverError(f"{', '.join(_flag(o) for o in unknown)}: not an option of --target {self.name} "
                              f"(its options: {own})")
        return chosen

    @abc.abstractmethod
    def compile(self, exp: Experiment, output: Path, *, image: str | None = None, **options: Any) -> list[Path]:
        """Write what the engine runs for ``exp`` at ``output`` (and next to it); the files written."""

    @abc.abstractmethod
    def submit(self, exp: Experiment, *, image: str | None = None, namespace: str | None = None, **options: Any) -> str:
        """Start a run of ``exp``; its id."""

    @abc.abstractmethod
    def status(self, run: str, *, namespace: str | None = None, **options: Any) -> dict[str, Any]:
        """Where run ``run`` stands (the keys in :data:`STATUS_KEYS`)."""

    def after_submit(self, exp: Experiment, spec_file: str) -> str:
        """A note for the user once a run started ("" for none)."""
        return ""


class LaneStore:
    """The experiment store a cluster's lanes share (``--lanes --storage URL --storage-secret NAME[:KEY]``),
    checked once for every driver: a PostgreSQL or MySQL URL without a password (it would be written
    into the compiled pipeline) and the Kubernetes Secret ``name`` or ``name:key`` (key ``password`` by
    default) whose value reaches the lane steps as :attr:`PASSWORD_ENV`. Raises ``error(field,
    message)`` (the driver's own ValueError) naming ``--storage`` or ``--storage-secret``::

        store = LaneStore("postgresql+psycopg://katib@katib-postgres:5432/hp", "hp-db", CompileError)
        store.secret_name, store.secret_key   # ('hp-db', 'password')
    """

    #: the environment variable the lane steps read the password from, and the one naming its Secret
    PASSWORD_ENV, SECRET_ENV = "HP_STORAGE_PASSWORD", "HP_STORAGE_SECRET"
    _NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")  # a Secret's name: a DNS subdomain
    _KEY = re.compile(r"[-._a-zA-Z0-9]{1,253}")  # a Secret's data key

    def __init__(self, storage: str, secret: str | None = None, error: type[ValueError] = DriverError):
        from hp_components.store import StoreConflict, parse_storage

        def fail(field: str, message: str) -> ValueError:
            return error(field, message) if error is not DriverError else DriverError(f"{field}: {message}")

        try:
            url = parse_storage(storage, ("postgresql", "mysql"), "lanes need a database server the cluster's pods reach")
        except StoreConflict as e:
            raise fail("--storage", str(e)) from None
        if url.password:
            raise fail("--storage", "holds a password, which would be written into the pipeline; drop it from the "
                                    "URL and give the Secret that holds it (--storage-secret NAME[:KEY])")
        self.secret_name: str | None = None
        self.secret_key: str | None = None
        if secret is not None:
            name, _, key = secret.partition(":")
            if not self._NAME.fullmatch(name) or (key and not self._KEY.fullmatch(key)):
                raise fail("--storage-secret", f"{secret!r}: give a Secret name (lower-case letters, digits, '-', "
                                               "'.') and optionally :KEY (letters, digits, '-', '_', '.')")
            self.secret_name, self.secret_key = name, key or "password"
        self.storage = storage

    @property
    def secret(self) -> str:
        """``name/key`` of the Secret, for the lane steps' messages ("" without one)."""
        return f"{self.secret_name}/{self.secret_key}" if self.secret_name else ""

    @staticmethod
    def lost_after(trial_limit: float | None, retries: int, pending: float, backoff: float = 0.0,
                   ceiling: float | None = None) -> int | None:
        """Seconds after which a lane trial still Running in the store is lost (``lane-suggest
        --lost-after``): the longest its trial step can run, each of its ``retries + 1`` attempts its
        trial deadline ``trial_limit`` + 60 s (the wrapper's kill and upload) + ``pending`` (the pod's
        start) + 300 s, plus the retries' ``backoff`` and 600 s for the steps around it; at most
        ``ceiling`` (a run deadline no trial outlives). None (never lost) without either bound::

            LaneStore.lost_after(600, retries=2, pending=600)   # 3 * (600 + 60 + 600 + 300) + 600 = 5280
        """
        if not trial_limit:
            return int(ceiling) if ceiling else None
        bound = int((retries + 1) * (trial_limit + 60 + pending + 300) + backoff + 600)
        return min(int(ceiling), bound) if ceiling else bound


def seconds(duration: str) -> int | None:
    """A duration as the engines write it (``"30"``, ``"30s"``, ``"5m"``, ``"1h"``) in seconds; None for
    anything else (the driver names the field)::

        seconds("5m")   # 300
    """
    found = re.fullmatch(r"(\d+)(s|m|h)?", duration.strip())
    return int(found.group(1)) * {"s": 1, None: 1, "m": 60, "h": 3600}[found.group(2)] if found else None


def _flag(option: str) -> str:
    return "--" + option.replace("_", "-")


def available() -> dict[str, str]:
    """Every driver's name -> where it lives (built-in and plug-ins)."""
    found = dict(BUILTIN)
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep.value)
    return found


def get_driver(name: str) -> Driver:
    """The driver called ``name``; DriverError naming the choices, or the extra to install."""
    where = available().get(name)
    if where is None:
        raise DriverError(f"--target must be one of {', '.join(sorted(available()))}, not {name!r}")
    module, _, attr = where.partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except ImportError as e:
        if (e.name or "").startswith("hp_components"):
            raise
        raise DriverError(f"--target {name} needs extra packages ({e.name}): pip install 'hp-components[{name}]'") from None
    if not (isinstance(cls, type) and issubclass(cls, Driver)):
        raise DriverError(f"driver {name!r} ({where}) is not a subclass of hp_components.drivers.Driver")
    return cls()
