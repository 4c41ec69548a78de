"""``hp-tune``: run, validate and inspect Katib Experiments.

    hp-tune validate examples/random-digits.yaml
    hp-tune run examples/random-digits.yaml --output out/

Exit codes: 0 the experiment Succeeded (or the spec is valid), 1 it Failed, 2 bad input,
130 interrupted by Ctrl-C (resume with the same command).
"""

from __future__ import annotations

import sys

if __name__ == "__main__":  # python -m hp_components.cli step suggest|collect: as hp-tune, without typer (_step_cli)
    from hp_components._step_cli import is_step, run_step

    if is_step(sys.argv[1:]):
        sys.exit(run_step(sys.argv[1:]))

import contextlib
import json
from pathlib import Path
from typing import Any, Iterator, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from hp_components.drivers import BUILTIN, Driver, DriverError, get_driver
from hp_components.experiment import Experiment, SpecError, load_experiment
from hp_components.status import ExperimentStatus
from hp_components.store import DEFAULT_STORAGE, StoreConflict
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


@contextlib.contextmanager
def _user_errors(storage: str, *errors: type[Exception]) -> Iterator[None]:
    """Exit 2 with a message, no traceback, for user mistakes: a stored experiment that conflicts,
    ``errors``, and database errors (a bad or unreachable ``--storage`` URL)."""
    try:
        yield
    except (StoreConflict, *errors) as e:
        raise _bad_input(str(e)) from None
    except Exception as e:  # noqa: BLE001 - database errors are user input too
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
    """The live view of a running experiment: a line per finished trial under a progress bar."""

    def __init__(self, exp: Experiment, quiet: bool):
        self.exp = exp
        self.quiet = quiet
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(), console=err, transient=True,
                                 disable=quiet)
        self.task = self.progress.add_task(exp.name, total=exp.spec.max_trial_count)

    def __call__(self, kind: str, payload: Any) -> None:
        if kind == "finished":
            self._finished(payload)
        elif kind == "status":
            self._status(payload)
        elif kind == "warning":
            err.print(f"[yellow]warning:[/] {payload}")

    def _finished(self, t: Trial) -> None:
        if self.quiet:
            return
        params = " ".join(f"{k}={v}" for k, v in t.assignments.items())
        value = "" if t.objective_value is None else f"{self.exp.spec.objective.objective_metric_name}={t.objective_value:.6g} "
        note = f" ({t.message})" if t.message and t.condition != "Succeeded" else ""
        self.progress.console.print(
            f"[{_STYLE.get(t.condition, 'white')}]{t.condition:<18}[/] {t.name}  {value}[dim]{params}{note}[/]",
            soft_wrap=True,
        )

    def _status(self, st: ExperimentStatus) -> None:
        c = st.counts
        done = c["trials"] - c["trialsRunning"] - c["trialsPending"]
        best = ""
        if st.best is not None:
            best = f" · best {st.best.objective_value:.6g}"
        self.progress.update(self.task, completed=done,
                             description=f"{self.exp.name}: {c['trialsRunning'] + c['trialsPending']} running{best}")


def _summary(exp: Experiment, status: ExperimentStatus, history: list[Trial]) -> None:
    params = [p.name for p in exp.spec.parameters]
    metric = exp.spec.objective.objective_metric_name
    table = Table(title=f"{exp.name}: {len(history)} trials", title_justify="left")
    for col in ("trial", "condition", metric, *params):
        table.add_column(col, overflow="fold")
    shown = history if len(history) <= 40 else sorted(
        history, key=lambda t: (t.objective_value is None,
                                -(t.objective_value or 0) if exp.spec.objective.type == "maximize" else (t.objective_value or 0)))[:40]
    for t in shown:
        best = status.best is not None and t.name == status.best.name
        table.add_row(t.name + (" *" if best else ""), f"[{_STYLE.get(t.condition, 'white')}]{t.condition}[/]",
                      "" if t.objective_value is None else f"{t.objective_value:.6g}",
                      *(t.assignments.get(p, "") for p in params))
    out.print(table)
    if len(history) > 40:
        out.print(f"(the best 40 of {len(history)} trials; all of them are in trials.csv with --output)")
    colour = "green" if status.condition == "Succeeded" else ("red" if status.condition == "Failed" else "yellow")
    out.print(f"[bold {colour}]{status.condition}[/]: {status.reason}: {status.message}")
    if status.best is not None:
        assignments = ", ".join(f"{k}={v}" for k, v in status.best.assignments.items())
        out.print(f"best trial {status.best.name}: {metric}={status.best.objective_value:.6g} ({assignments})")


@app.command()
def run(
    file: Path = typer.Argument(..., help="A Katib Experiment YAML"),
    storage: str = typer.Option(DEFAULT_STORAGE, help="Where the experiment's state lives (SQLAlchemy URL: sqlite:///x.db, postgresql://...)"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write status.json and trials.csv here"),
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
    reporter = _Reporter(exp, quiet)
    with _user_errors(storage, RunnerError), reporter.progress:
        result = run_local(exp, storage=storage, workdir=workdir, run_dir=run_dir, fresh=fresh,
                           warm_start=warm_start, on_event=reporter)
    if output is not None:
        write_outputs(output, exp, result.status, result.history)
    _summary(exp, result.status, result.history)
    if output is not None:
        out.print(f"wrote {output / 'status.json'} and {output / 'trials.csv'}")
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
) -> None:
    """Write a report of a stored experiment: charts, the best trial and every trial."""
    from hp_components.report import html_report, markdown_report
    from hp_components.status import experiment_status
    from hp_components.store import ExperimentStore

    if format not in ("html", "markdown"):
        raise _bad_input(f"--format must be html or markdown, not {format!r}")
    exp = _load(file)
    with _user_errors(storage):
        history = ExperimentStore(storage, exp).history()
    status_now = experiment_status(exp, history)
    text = (html_report if format == "html" else markdown_report)(exp, status_now, history)
    if output is None and format == "markdown":
        out.print(text, markup=False, highlight=False, soft_wrap=True)
        return
    path = output or Path(f"{exp.name}-report.html")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    out.print(f"wrote {path}", markup=False)


@app.command()
def dashboard(
    storage: str = typer.Option(DEFAULT_STORAGE, help="The experiment store to show"),
    host: str = typer.Option("127.0.0.1", help="Listen on this address"),
    port: int = typer.Option(8080, help="Listen on this port"),
) -> None:
    """Start optuna-dashboard on the experiment store (each experiment is a study)."""
    try:
        from optuna_dashboard import run_server
    except ImportError:
        raise _bad_input("the dashboard needs optuna-dashboard: pip install 'hp-components[dashboard]'") from None
    from hp_components.store import make_storage

    with _user_errors(storage):
        rdb = make_storage(storage)
    err.print(f"optuna-dashboard on http://{host}:{port}/ (Ctrl-C to stop)")
    run_server(rdb, host=host, port=port)


def _driver(target: str) -> Driver:
    """The driver for ``--target`` (built-in or a plug-in's), or exit 2 naming the choices or the extra."""
    try:
        return get_driver(target)
    except DriverError as e:
        raise _bad_input(str(e)) from None


_TARGET_HELP = "Where to run: " + ", ".join(BUILTIN) + " (or a plug-in's driver)"


@app.command("compile")
def compile_(
    file: Path = typer.Argument(..., help="A Katib Experiment YAML"),
    target: str = typer.Option(..., "--target", "-t", help=_TARGET_HELP),
    output: Path = typer.Option(..., "--output", "-o", help="Where to write the compiled YAML"),
    kind: Optional[str] = typer.Option(None, help="argo: workflowtemplate (default) or workflow"),
    image: Optional[str] = typer.Option(None, help="The hp-components image the suggest/collect steps run in"),
) -> None:
    """Compile an experiment for an engine (KFP v2 IR YAML, Argo YAML, or the defaulted spec for local)."""
    exp = _load(file)
    driver = _driver(target)
    try:
        written = driver.compile(exp, output, image=image, kind=kind)
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
    image: Optional[str] = typer.Option(None, help="The hp-components image the suggest/collect steps run in"),
) -> None:
    """Compile and submit an experiment to a KFP or Argo installation; prints the run's name."""
    exp = _load(file)
    driver = _driver(target)
    try:
        name = driver.submit(exp, image=image, namespace=namespace, host=host, argo_server=argo_server, token=token)
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


step_app = typer.Typer(add_completion=False, no_args_is_help=True,
                       help="The pipeline steps KFP and Argo run (JSON in, JSON out; see hp_components.steps).")
app.add_typer(step_app, name="step")


def _json_arg(value: str, what: str) -> Any:
    """A JSON value given inline (starts with '{' or '['), as a file path, or empty (None)."""
    text = value.strip()
    if not text:
        return None
    if not text.startswith(("{", "[")):
        try:
            text = Path(value).read_text(encoding="utf-8").strip()
        except OSError as e:
            raise _bad_input(f"--{what}: cannot read {value}: {e.strerror or e}") from None
        if not text:
            return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise _bad_input(f"--{what}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None


def _experiment_arg(value: str) -> Experiment:
    data = _json_arg(value, "experiment") if value.strip().startswith("{") else None
    try:
        return load_experiment(data if data is not None else Path(value))
    except SpecError as e:
        raise _bad_input("--experiment: " + "; ".join(f"{p}: {m}" for p, m in e.problems)) from None


def _history_arg(value: str) -> list[Trial]:
    from hp_components.trials import load_history

    data = _json_arg(value, "history")
    try:
        return load_history(data if data is not None else [])
    except (ValueError, TypeError, KeyError) as e:
        raise _bad_input(f"--history: {e}") from None


def _write(path: Optional[Path], value: Any) -> None:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    if path is None:
        out.print(text, markup=False, highlight=False, soft_wrap=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


@step_app.command("suggest")
def step_suggest(
    experiment: str = typer.Option(..., help="The Experiment: a YAML/JSON file or inline JSON"),
    history: str = typer.Option("", help="History JSON (a file or inline); empty for a new experiment"),
    count: Optional[int] = typer.Option(None, help="How many trials (default: parallelTrialCount)"),
    trials_out: Optional[Path] = typer.Option(None, help="Write the batch here (default: stdout)"),
    params_out: Optional[Path] = typer.Option(None, help="Also write the batch without sampler state (for a fan-out)"),
    items_out: Optional[Path] = typer.Option(None, help="Also write the batch as flat fan-out items "
                                                        "({hp-trial-name, trialParameter: value})"),
) -> None:
    """Suggest the next batch: [{name, parameterAssignments, parameters}], [] when nothing is left."""
    from hp_components.steps import fan_out_items, slim, suggest_step

    exp = _experiment_arg(experiment)
    batch = suggest_step(exp, _history_arg(history), count)
    _write(trials_out, batch)
    if params_out:
        _write(params_out, slim(batch))
    if items_out:
        _write(items_out, fan_out_items(batch))


@step_app.command("collect")
def step_collect(
    experiment: str = typer.Option(..., help="The Experiment: a YAML/JSON file or inline JSON"),
    history: str = typer.Option("", help="History JSON before this batch (a file or inline)"),
    trials: str = typer.Option("[]", help="The batch the suggest step returned (a file or inline JSON)"),
    observations: str = typer.Option("[]", help="The wrappers' outputs: a JSON list in batch order, a JSON "
                                               "object by trial name, or a folder of *.json files"),
    history_out: Optional[Path] = typer.Option(None, help="Write the new history here"),
    status_out: Optional[Path] = typer.Option(None, help="Write Katib's Experiment.status here"),
    done_out: Optional[Path] = typer.Option(None, help="Write 'true' or 'false' here"),
    best_out: Optional[Path] = typer.Option(None, help="Write {name, parameters, objective} of the best trial here"),
    summary_out: Optional[Path] = typer.Option(None, help="Write the status without trial lists (small) here"),
    next_trials_out: Optional[Path] = typer.Option(None, help="Suggest the next batch and write it here ([] when done)"),
    next_params_out: Optional[Path] = typer.Option(None, help="With --next-trials-out: the batch without sampler state"),
    next_items_out: Optional[Path] = typer.Option(None, help="With --next-trials-out: the batch as flat fan-out items"),
    best_parameters_out: Optional[Path] = typer.Option(None, help="Write the best trial's assignments {name: value} here"),
    objective_out: Optional[Path] = typer.Option(None, help="Write the best objective value here (empty: none yet)"),
) -> None:
    """Record a batch's observations; report status, done and the best trial (and the next batch)."""
    from hp_components.steps import collect_step, fan_out_items, slim, status_summary

    exp = _experiment_arg(experiment)
    batch = _json_arg(trials, "trials") or []
    folder = Path(observations)
    if observations.strip() and not observations.strip().startswith(("[", "{")) and folder.is_dir():
        obs: Any = {}
        for f in sorted(folder.glob("*.json")):
            item = _json_arg(str(f), "observations")
            if isinstance(item, dict):
                obs[str(item.get("name") or f.stem)] = item
    else:
        obs = _json_arg(observations, "observations") or []
    if not isinstance(batch, list) or not isinstance(obs, (list, dict)):
        raise _bad_input("--trials must be a JSON list and --observations a JSON list or object")
    result = collect_step(exp, _history_arg(history), batch, obs, suggest_next=next_trials_out is not None)
    if next_trials_out:
        _write(next_trials_out, result["next"])
        if next_params_out:
            _write(next_params_out, slim(result["next"]))
        if next_items_out:
            _write(next_items_out, fan_out_items(result["next"]))
    if summary_out:
        _write(summary_out, status_summary(result["status"]))
    _write(history_out, result["history"]) if history_out else None
    _write(status_out, result["status"]) if status_out else None
    _write(done_out, "true" if result["done"] else "false") if done_out else None
    _write(best_out, result["best"]) if best_out else None
    _write(best_parameters_out, result["best"]["parameters"]) if best_parameters_out else None
    if objective_out:
        objective = result["best"]["objective"]
        _write(objective_out, "" if objective is None else repr(float(objective)))
    if not any((history_out, status_out, done_out, best_out, summary_out, next_trials_out, best_parameters_out,
                objective_out)):
        _write(None, result)


@step_app.command("launch")
def step_launch(
    experiment: str = typer.Option(..., help="The Experiment: a YAML/JSON file or inline JSON"),
    name: str = typer.Option(..., help="The trial's name (the job's name)"),
    param: list[str] = typer.Option([], "--param", help="NAME=VALUE: a trialParameter's value (repeat for each)"),
    namespace: Optional[str] = typer.Option(None, help="Namespace of the job (default: the experiment's, else the "
                                                       "pod's own, else the kubeconfig context's)"),
    output: Optional[Path] = typer.Option(None, help="Write the trial's result JSON here (default: stdout)"),
    observe_only: bool = typer.Option(False, help="Do not create the job, wait for the one an earlier step created"),
    poll: float = typer.Option(5.0, help="Seconds between status checks"),
) -> None:
    """Run a trial as a Kubernetes job (Job, PyTorchJob, TFJob, MPIJob, XGBoostJob) and report its metrics."""
    from hp_components.jobs import JobTrialError, KubeJobs, default_namespace, launch

    exp = _experiment_arg(experiment)
    values = dict(p.partition("=")[::2] for p in param)
    if any("=" not in p for p in param):
        raise _bad_input("--param takes NAME=VALUE (a trialParameter's name and this trial's value)")
    try:
        result = launch(exp, name, values, KubeJobs.from_environment(),
                        namespace=namespace or exp.metadata.namespace or default_namespace(), create=not observe_only,
                        poll=poll)
    except JobTrialError as e:
        raise _bad_input(str(e)) from None
    _write(output, result)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``hp-tune``."""
    try:
        app(args=argv, prog_name="hp-tune", standalone_mode=True)
    except SystemExit as e:
        return int(e.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
