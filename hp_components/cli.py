"""``hp-tune``: run, validate and inspect Katib Experiments.

    hp-tune validate examples/random-digits.yaml
    hp-tune run examples/random-digits.yaml --output out/

Exit codes: 0 the experiment Succeeded (or the spec is valid), 1 it Failed, 2 bad input,
130 interrupted by Ctrl-C (resume with the same command).
"""

from __future__ import annotations

import sys

from hp_components._step_cli import HELP as _STEP_HELP
from hp_components._step_cli import is_step, run_step

if __name__ == "__main__" and is_step(sys.argv[1:]):  # python -m hp_components.cli step ...: without typer
    sys.exit(run_step(sys.argv[1:]))

import contextlib
import json
from pathlib import Path
from typing import Any, Iterator, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hp_components.drivers import BUILTIN, Driver, DriverError, get_driver
from hp_components.experiment import Experiment, SpecError, load_experiment
from hp_components.status import ExperimentStatus
from hp_components.store import DEFAULT_STORAGE, StoreConflict, store_fault
from hp_components.trials import Trial

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Hyperparameter tuning with Katib Experiments, locally and in pipelines.")
err = Console(stderr=True, highlight=False)
out = Console(highlight=False)
if not out.is_terminal:  # a log or a pipe: no need to squeeze tables into 80 columns
    out.width = 160

_STYLE = {"Succeeded": "green", "Failed": "red", "MetricsUnavailable": "yellow", "Killed": "magenta",
          "EarlyStopped": "cyan", "Interrupted": "magenta", "Running": "blue", "Created": "blue"}


def _bad_input(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    return typer.Exit(2)


#: the exit code of a runtime fault: the store or the run folder failed (full, read-only, damaged, unreachable)
FAULT_EXIT = 3


def _runtime_fault(message: str) -> typer.Exit:
    err.print(f"[bold red]runtime fault:[/] {escape(message)}", soft_wrap=True)
    return typer.Exit(FAULT_EXIT)


@contextlib.contextmanager
def _user_errors(storage: str, *errors: type[Exception]) -> Iterator[None]:
    """Exit 2 with a message, no traceback, for user mistakes: a stored experiment that conflicts,
    ``errors``, and a malformed ``--storage`` URL. Exit 3 (:data:`FAULT_EXIT`) for runtime faults:
    the store failing (full, read-only, damaged, unreachable) or the disk under the run folder."""
    try:
        yield
    except (StoreConflict, *errors) as e:
        raise _bad_input(str(e)) from None
    except Exception as e:  # noqa: BLE001 - a database's own errors: its fault, or a bad URL
        local = sys.modules.get("hp_components.local")  # only a run raises its RunnerFault
        if local is not None and isinstance(e, local.RunnerFault):
            raise _runtime_fault(str(e)) from None
        fault = store_fault(e, storage)
        if fault is not None:
            raise _runtime_fault(str(fault)) from None
        if isinstance(e, OSError):
            raise _runtime_fault(f"{e.filename + ': ' if e.filename else ''}{e.strerror or e}") from None
        if type(e).__module__.startswith(("sqlalchemy", "optuna")):
            raise _bad_input(f"--storage {storage}: {e}") from None
        raise


def _load(path: Path) -> Experiment:
    try:
        return load_experiment(path)
    except SpecError as e:
        err.print(f"[bold red]{path}: {len(e.problems)} problem{'s' if len(e.problems) != 1 else ''}[/]")
        for where, message in e.problems:
            err.print(f"  {where}: {message}", markup=False, soft_wrap=True)
        raise typer.Exit(2) from None


@app.command()
def validate(file: Path = typer.Argument(..., help="A Katib Experiment YAML")) -> None:
    """Check a spec and list every problem, with its field path (exit 2 when there are any)."""
    exp = _load(file)
    spec = exp.spec
    out.print(
        f"{file}: valid. Experiment {exp.name!r}: {len(spec.parameters)} parameters, algorithm "
        f"{spec.algorithm.algorithm_name}, {spec.objective.type} {spec.objective.objective_metric_name}, "
        f"{spec.max_trial_count if spec.max_trial_count is not None else 'unlimited'} trials, "
        f"{spec.parallel_trial_count} at a time",
        markup=False, soft_wrap=True,
    )


class _Reporter:
    """The live view of a running experiment, as Ray Tune's status table: a progress line (trials
    done, running, the best so far) over a table of the running trials with their parameters, the
    latest value of the objective metric they reported and their time so far; a line per finished
    trial above it (a failed one with the end of its output and its log).

        with _Reporter(exp, quiet=False, run_dir=Path("hp-runs") / exp.name) as reporter:
            run_local(exp, on_event=reporter)
    """

    _ROWS = 20  # running trials shown; the rest are counted

    def __init__(self, exp: Experiment, quiet: bool, run_dir: Path):
        from time import monotonic

        from rich.live import Live

        self.clock = monotonic

        self.exp = exp
        self.quiet = quiet
        self.run_dir = run_dir
        self.metric = exp.spec.objective.objective_metric_name
        self.started = self.clock()
        self.running: dict[str, tuple[Trial, float]] = {}
        self.done = 0
        self.best: Optional[float] = None
        self.live = Live(console=err, transient=True, refresh_per_second=4, get_renderable=self._render,
                         redirect_stdout=False, redirect_stderr=False)

    def __enter__(self) -> "_Reporter":
        if not self.quiet and err.is_terminal:
            self.live.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live.is_started:
            self.live.stop()

    def __call__(self, kind: str, payload: Any) -> None:
        if kind == "started":
            self.running[payload.name] = (payload, self.clock())
        elif kind == "finished":
            self.running.pop(payload.name, None)
            self._finished(payload)
        elif kind == "status":
            c = payload.counts
            self.done = c["trials"] - c["trialsRunning"] - c["trialsPending"]
            self.best = payload.best.objective_value if payload.best is not None else None
        elif kind == "warning":
            err.print(f"[yellow]warning:[/] {escape(str(payload))}")
        elif kind == "note":
            err.print(f"[dim]{escape(str(payload))}[/]", soft_wrap=True)

    def _finished(self, t: Trial) -> None:
        from hp_components.report import trial_log
        from hp_components.trials import FAILED

        if self.quiet:
            return
        params = " ".join(f"{k}={v}" for k, v in t.assignments.items())
        value = "" if t.objective_value is None else f"{self.metric}={t.objective_value:.6g} "
        note = f" ({t.message})" if t.message and t.condition != "Succeeded" else ""
        err.print(f"[{_STYLE.get(t.condition, 'white')}]{t.condition:<18}[/] {escape(t.name)}  {escape(value)}"
                  f"[dim]{escape(params + note)}[/]", soft_wrap=True)
        if t.condition in FAILED:
            path, tail = trial_log(self.run_dir, t)
            for line in tail:
                err.print(f"    {line}", markup=False, highlight=False, soft_wrap=True)
            err.print(f"    [dim]log: {escape(str(path))}[/]", soft_wrap=True)

    def _render(self) -> Any:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.text import Text

        # Text, not markup strings: a line printed above the live view with markup=False renders it too
        total = self.exp.spec.max_trial_count
        elapsed = self.clock() - self.started
        best = "" if self.best is None else f" · best {self.metric}={self.best:.6g}"
        line = Table.grid(padding=(0, 1))
        line.add_row(Text(self.exp.name, style="bold"),
                     ProgressBar(total=float(total or max(self.done, 1)), completed=float(self.done), width=30),
                     Text(f"{self.done}/{total if total is not None else '?'} done · {len(self.running)} running{best}"),
                     Text(_clock(elapsed), style="dim"))
        if not self.running:
            return line
        params = [p.name for p in self.exp.spec.parameters]
        table = Table(box=None, padding=(0, 2), show_edge=False, header_style="bold")
        for col in ("running trial", *params, f"latest {self.metric}", "reports", "time"):
            table.add_column(col, overflow="ellipsis", no_wrap=True)
        now = self.clock()
        for t, since in list(self.running.values())[:self._ROWS]:
            latest = f"{t.intermediate_values[-1][1]:.6g}" if t.intermediate_values else ""
            table.add_row(*(Text(c) for c in (t.name, *(str(t.assignments.get(p, "")) for p in params), latest,
                                              str(len(t.intermediate_values)), _clock(now - since))))
        more = len(self.running) - self._ROWS
        return Group(line, table, *([Text(f"and {more} more running", style="dim")] if more > 0 else []))


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def _summary(exp: Experiment, status: ExperimentStatus, history: list[Trial], run_dir: Path,
             interrupted: bool = False) -> None:
    from dataclasses import replace

    from hp_components.report import failure_note
    from hp_components.trials import FAILED

    params = [p.name for p in exp.spec.parameters]
    metric = exp.spec.objective.objective_metric_name
    if interrupted:  # this runner is leaving: what it had running was cut short, and runs again on resume
        history = [t if not t.active else replace(t, condition="Interrupted") for t in history]
    table = Table(title=f"{exp.name}: {len(history)} trials", title_justify="left")
    for col in ("trial", "condition", metric, *params):
        table.add_column(col, overflow="fold")
    shown = history if len(history) <= 40 else sorted(
        history, key=lambda t: (t.objective_value is None,
                                -(t.objective_value or 0) if exp.spec.objective.type == "maximize" else (t.objective_value or 0)))[:40]
    for t in shown:
        best = status.best is not None and t.name == status.best.name
        table.add_row(escape(t.name) + (" *" if best else ""), f"[{_STYLE.get(t.condition, 'white')}]{t.condition}[/]",
                      "" if t.objective_value is None else f"{t.objective_value:.6g}",
                      *(escape(str(t.assignments.get(p, ""))) for p in params))
    out.print(table)
    if len(history) > 40:
        out.print(f"(the best 40 of {len(history)} trials; all of them are in trials.csv with --output)")
    failed = [t for t in history if t.condition in FAILED]
    for t in failed[:3]:
        out.print(failure_note(run_dir, t), markup=False, highlight=False, soft_wrap=True)
    if len(failed) > 3:
        out.print(f"({len(failed) - 3} more failed trials: their logs are in {run_dir}/<trial>/output.log)",
                  markup=False, soft_wrap=True)
    colour = "green" if status.condition == "Succeeded" else ("red" if status.condition == "Failed" else "yellow")
    out.print(f"[bold {colour}]{status.condition}[/]: {status.reason}: {status.message}")
    if status.best is not None:
        assignments = ", ".join(f"{k}={v}" for k, v in status.best.assignments.items())
        out.print(f"best trial {status.best.name}: {metric}={status.best.objective_value:.6g} ({assignments})",
                  markup=False, soft_wrap=True)


def _storage_url(storage: str) -> str:
    """``--storage`` checked before anything connects (:func:`hp_components.store.storage_url`); exit 2 if bad."""
    from hp_components.store import StoreConflict, storage_url

    try:
        return storage_url(storage)
    except StoreConflict as e:
        raise _bad_input(f"--storage {e}") from None


def _writable_folder(path: Path, option: str) -> None:
    """Exit 2 unless ``path`` is a folder this user can write into, or one that can be made."""
    import os

    if path.exists():
        if not path.is_dir():
            raise _bad_input(f"{option} {path}: is a file, not a folder")
        if not os.access(path, os.W_OK | os.X_OK):
            raise _bad_input(f"{option} {path}: this folder is not writable")
        return
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise _bad_input(f"{option} {path}: {parent} is a file, not a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise _bad_input(f"{option} {path}: cannot create it, {parent} is not writable")
            return


def _existing_store(storage: str) -> Any:
    """The store a reading command reads: it must exist (nothing is created); exit 2 naming what does."""
    from hp_components.store import open_existing

    with _user_errors(storage):
        return open_existing(_storage_url(storage))


@app.command()
def run(
    file: Path = typer.Argument(..., help="A Katib Experiment YAML"),
    storage: str = typer.Option(DEFAULT_STORAGE, help="Where the experiment's state lives (SQLAlchemy URL: sqlite:///x.db, postgresql://...)"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write status.json, trials.csv and report.html here"),
    workdir: Optional[Path] = typer.Option(None, help="Run trials in this folder (default: the current one)"),
    run_dir: Path = typer.Option(Path("hp-runs"), help="Trial logs go to RUN_DIR/<experiment>/<trial>/"),
    fresh: bool = typer.Option(False, "--fresh", help="Forget a stored experiment of this name and start over"),
    warm_start: Optional[str] = typer.Option(None, "--warm-start", help="Seed the search with the finished trials of this experiment (same --storage)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No live progress; only the summary"),
) -> None:
    """Run an experiment locally, trials as subprocesses; the same command resumes it."""
    from hp_components.local import RunnerError, run_local
    from hp_components.report import write_outputs

    exp = _load(file)
    url = _storage_url(storage)
    if workdir is not None and not workdir.is_dir():
        raise _bad_input(f"--workdir {workdir}: " + ("is a file, not a folder" if workdir.exists() else "no such folder"))
    _writable_folder(run_dir / exp.name, "--run-dir")
    if output is not None:
        _writable_folder(output, "--output")
    with _user_errors(storage, RunnerError), _Reporter(exp, quiet, run_dir / exp.name) as reporter:
        result = run_local(exp, storage=url, workdir=workdir, run_dir=run_dir, fresh=fresh,
                           warm_start=warm_start, on_event=reporter)
    written = write_outputs(output, exp, result.status, result.history, result.run_dir) if output is not None else []
    _summary(exp, result.status, result.history, result.run_dir, result.interrupted)
    if written:
        out.print("wrote " + ", ".join(str(p) for p in written), markup=False, soft_wrap=True)
    if result.interrupted:
        err.print("interrupted: run the same command to resume (finished trials are kept)")
        raise typer.Exit(130)
    raise typer.Exit(0 if result.status.condition == "Succeeded" else 1)


@app.command()
def report(
    file: Path = typer.Argument(..., help="The Katib Experiment YAML that was run"),
    storage: str = typer.Option(DEFAULT_STORAGE, help="Where the experiment's state lives"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write here (default: stdout for markdown, <name>-report.html for html)"),
    format: str = typer.Option("html", "--format", "-f", help="html (self-contained, with charts) or markdown"),
    run_dir: Path = typer.Option(Path("hp-runs"), help="Where the run put its trial logs (RUN_DIR/<experiment>/<trial>/)"),
) -> None:
    """Write a report of a stored experiment: charts, the best trial, failed trials' logs and every trial.

    Reads only: a store or an experiment that does not exist is an error, never created."""
    from hp_components.report import html_report, markdown_report, write_file
    from hp_components.status import experiment_status
    from hp_components.store import StoreConflict, load_stored

    if format not in ("html", "markdown"):
        raise _bad_input(f"--format must be html or markdown, not {format!r}")
    exp = _load(file)
    path = output or Path(f"{exp.name}-report.html")
    if format == "html" or output is not None:
        if path.is_dir():
            raise _bad_input(f"--output {path}: is a folder; name the file, e.g. {path / (exp.name + '-report.html')}")
        _writable_folder(path.parent, "--output")
    url = _storage_url(storage)
    rdb = _existing_store(url)
    with _user_errors(storage):
        try:
            _, history = load_stored(url, exp.name, "report")
        except StoreConflict as e:
            names = sorted(s.study_name for s in rdb.get_all_studies())
            stored = f"; it holds {', '.join(names)}" if names else "; it holds no experiment"
            raise _bad_input(f"{e}{stored} (run it first: hp-tune run {file})") from None
    status_now = experiment_status(exp, history)
    if not status_now.done and not any(t.active for t in history):  # ended because the algorithm had no more?
        from hp_components.suggest import suggest

        status_now = experiment_status(exp, history, suggestion_done=not suggest(exp, history, 1))
    text = (html_report if format == "html" else markdown_report)(exp, status_now, history, run_dir / exp.name)
    if output is None and format == "markdown":
        out.print(text, markup=False, highlight=False, soft_wrap=True)
        return
    write_file(path, text)
    out.print(f"wrote {path}", markup=False)


@app.command("import")
def import_(
    file: Path = typer.Argument(..., help="The Katib Experiment YAML the pipeline ran"),
    history: Path = typer.Option(..., "--history", help="The run's history: Argo's history.json artifact, the KFP "
                                                        "collect step's state artifact, or a JSON list of trials"),
    storage: str = typer.Option(DEFAULT_STORAGE, help="The store to write the trials into"),
    fresh: bool = typer.Option(False, "--fresh", help="Replace an experiment of that name already stored"),
) -> None:
    """Copy a KFP or Argo run's trials into a store: then report, dashboard and --warm-start read it.

        hp-tune import experiment.yaml --history history.json && hp-tune dashboard
    """
    from hp_components.store import import_history
    from hp_components.trials import load_history

    exp = _load(file)
    try:
        data = json.loads(history.read_text(encoding="utf-8"))
    except OSError as e:
        raise _bad_input(f"--history {history}: cannot read it: {e.strerror or e}") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise _bad_input(f"--history {history}: not JSON ({e})") from None
    if isinstance(data, dict) and "history" in data:  # the KFP state artifact: {"history": [...], "status": ...}
        data = data["history"]
    try:
        trials = load_history(data)
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise _bad_input(f"--history {history}: not a pipeline history (a JSON list of trial records, or a KFP "
                         f"state artifact with one under 'history'): {e}") from None
    url = _storage_url(storage)
    with _user_errors(storage):
        written = import_history(url, exp, trials, fresh=fresh)
    import sqlalchemy.engine

    shown = sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    out.print(f"imported {len(written)} trials of {exp.name} into {shown}: hp-tune report {file} --storage URL, "
              "hp-tune dashboard --storage URL", markup=False, soft_wrap=True)


@app.command()
def dashboard(
    storage: str = typer.Option(DEFAULT_STORAGE, help="The experiment store to show"),
    host: str = typer.Option("127.0.0.1", help="Listen on this address"),
    port: int = typer.Option(8080, help="Listen on this port"),
) -> None:
    """Start optuna-dashboard on the experiment store (each experiment is a study); it must exist."""
    try:
        from optuna_dashboard import run_server
    except ImportError:
        raise _bad_input("the dashboard needs optuna-dashboard: pip install 'hp-components[dashboard]'") from None

    rdb = _existing_store(storage)
    err.print(f"optuna-dashboard on http://{host}:{port}/ (Ctrl-C to stop)")
    run_server(rdb, host=host, port=port)


def _driver(target: str) -> Driver:
    """The driver for ``--target`` (built-in or a plug-in's), or exit 2 naming the choices or the extra."""
    try:
        return get_driver(target)
    except DriverError as e:
        raise _bad_input(str(e)) from None


_IMAGE_HELP = ("The hp-components image the suggest/collect steps run in: build it from the Dockerfile and push it "
               "where the cluster pulls from (default: $HP_IMAGE)")


def _step_image(image: Optional[str], target: str) -> Optional[str]:
    """The step image; without one a cluster target gets the unpublished default, said loudly."""
    if image is None and target != "local":
        from hp_components.steps import DEFAULT_IMAGE

        err.print(f"[bold yellow]warning:[/] no --image (or HP_IMAGE): the suggest and collect steps will use "
                  f"{DEFAULT_IMAGE}, which is not published, so the run would stop at ImagePullBackOff. Build and push "
                  "the step image (docker build -t REGISTRY/hp-components:0.1.0 . && docker push "
                  "REGISTRY/hp-components:0.1.0), then pass --image REGISTRY/hp-components:0.1.0 or set HP_IMAGE",
                  soft_wrap=True)
    return image


_TARGET_HELP = "Where to run: " + ", ".join(BUILTIN) + " (or a plug-in's driver)"


@app.command("compile")
def compile_(
    file: Path = typer.Argument(..., help="A Katib Experiment YAML"),
    target: str = typer.Option(..., "--target", "-t", help=_TARGET_HELP),
    output: Path = typer.Option(..., "--output", "-o", help="Where to write the compiled YAML"),
    kind: Optional[str] = typer.Option(None, help="argo: workflowtemplate (default) or workflow"),
    image: Optional[str] = typer.Option(None, envvar="HP_IMAGE", help=_IMAGE_HELP),
    lanes: bool = typer.Option(False, "--lanes", help="argo, kfp: parallelTrialCount asynchronous lanes over --storage (no round barrier)"),
    storage: Optional[str] = typer.Option(None, help="argo, kfp --lanes: the experiment store's URL, without its password"),
    storage_secret: Optional[str] = typer.Option(None, help="argo, kfp --lanes: the Kubernetes Secret NAME[:KEY] holding the store's password"),
) -> None:
    """Compile an experiment for an engine (KFP v2 IR YAML, Argo YAML, or the defaulted spec for local)."""
    exp = _load(file)
    driver = _driver(target)
    try:
        written = driver.compile(exp, output, image=_step_image(image, target), kind=kind, lanes=True if lanes else None,
                                 storage=storage, storage_secret=storage_secret)
    except ValueError as e:  # CompileError and friends: the spec cannot run on that engine
        raise _bad_input(str(e)) from None
    for path in written:
        out.print(f"wrote {path}", markup=False)


@app.command()
def submit(
    file: Path = typer.Argument(..., help="A Katib Experiment YAML"),
    target: str = typer.Option(..., "--target", "-t", help=_TARGET_HELP),
    host: Optional[str] = typer.Option(None, help="kfp: the KFP API endpoint"),
    argo_server: Optional[str] = typer.Option(None, help="argo: submit through this Argo Server instead of the Kubernetes API"),
    token: Optional[str] = typer.Option(None, help="kfp, argo: bearer token for the API"),
    namespace: Optional[str] = typer.Option(None, help="Kubernetes namespace (default: the experiment's, else your context's)"),
    image: Optional[str] = typer.Option(None, envvar="HP_IMAGE", help=_IMAGE_HELP),
) -> None:
    """Compile and submit an experiment to a KFP or Argo installation; prints the run's name."""
    exp = _load(file)
    driver = _driver(target)
    try:
        name = driver.submit(exp, image=_step_image(image, target), namespace=namespace, host=host,
                             argo_server=argo_server, token=token)
    except ValueError as e:
        raise _bad_input(str(e)) from None
    out.print(str(name), markup=False)
    note = driver.after_submit(exp, str(file))
    if note:
        err.print(note, markup=False)


@app.command()
def status(
    name: str = typer.Argument(..., help="The run that submit printed (an Argo Workflow, a KFP run id, a local experiment)"),
    target: str = typer.Option("argo", "--target", "-t", help=_TARGET_HELP),
    host: Optional[str] = typer.Option(None, help="kfp: the KFP API endpoint"),
    argo_server: Optional[str] = typer.Option(None, help="argo: read through this Argo Server instead of the Kubernetes API"),
    token: Optional[str] = typer.Option(None, help="kfp, argo: bearer token for the API"),
    namespace: Optional[str] = typer.Option(None, help="Kubernetes namespace"),
    storage: Optional[str] = typer.Option(None, help="local: the experiment store"),
) -> None:
    """Progress, trials and the best result of a submitted run, as JSON."""
    driver = _driver(target)
    try:
        result = driver.status(name, namespace=namespace, host=host, argo_server=argo_server, token=token,
                               storage=storage)
    except ValueError as e:
        raise _bad_input(str(e)) from None
    out.print(json.dumps(result, indent=2), markup=False, highlight=False, soft_wrap=True)


@app.command("step", context_settings={"allow_extra_args": True, "ignore_unknown_options": True,
                                       "help_option_names": []}, help=_STEP_HELP, add_help_option=False)
def step(ctx: typer.Context) -> None:
    """Listed in ``hp-tune --help`` only: :func:`main` hands ``step ...`` to :mod:`hp_components._step_cli`."""
    raise typer.Exit(run_step(["step", *ctx.args]))


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``hp-tune``; ``hp-tune step ...`` is :mod:`hp_components._step_cli`'s."""
    args = sys.argv[1:] if argv is None else list(argv)
    if is_step(args):
        return run_step(args)
    try:
        app(args=argv, prog_name="hp-tune", standalone_mode=True)
    except SystemExit as e:
        return int(e.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
