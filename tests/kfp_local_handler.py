"""A test-only kfp.local task handler: every task, container components included, runs as a local process.

kfp.local's SubprocessRunner refuses container components, so the tests put this handler in its
place. What it relies on in kfp.local (kfp 2.17.3):

* kfp/local/task_dispatcher.py ``run_single_task_implementation``: builds the ExecutorInput
  (``executor_input_utils.construct_executor_input``), resolves every placeholder into
  ``full_command`` (``placeholder_utils.replace_placeholders``), then looks the handler class up in
  a dict built on each call from the module attribute
  ``kfp.local.subprocess_task_handler.SubprocessTaskHandler``, keyed by ``type(runner)``;
  it calls ``Handler(image, full_command, pipeline_root, runner, env_vars).run()`` and, on
  ``Status.SUCCESS``, reads the output parameter files (``executor_output_utils.get_outputs_for_task``).
* kfp/local/task_handler_interface.py ``ITaskHandler``: that constructor and ``run()``.
* Output parameter and artifact paths lie under ``pipeline_root``; kfp.local does not create their
  directories (the backend's launcher does, launcher_v2.go ``prepareOutputFolders``), so we do.
* kfp/local/orchestrator/task_executor.py ``execute_single_task``: retries a FAILURE per the task's
  retryPolicy (backoff_duration * backoff_factor ** attempt), which :data:`FAULTS` exercises.

Everything else (DAG order, ParallelFor, conditions, OneOf, Collected, sub-DAG inputs/outputs) is
kfp.local's own ``run_enhanced_dag``. ``python3`` in a command is this interpreter (PATH), which
has kfp and hp_components. :data:`FAULTS` simulates infrastructure failures: a task whose command
mentions a listed string fails once without running (an evicted pod), then runs normally.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Dict, Iterator, List, Optional

from kfp.local import status, task_handler_interface

#: strings (e.g. a trial's name) whose tasks fail once before running, and how often that happened
FAULTS: set[str] = set()
EVICTED: list[str] = []
#: every command run (for assertions on what a trial pod receives)
COMMANDS: list[List[str]] = []
_lock = threading.Lock()


class ProcessTaskHandler(task_handler_interface.ITaskHandler):
    def __init__(self, image: str, full_command: List[str], pipeline_root: str, runner: object,
                 env_vars: Optional[Dict[str, str]] = None) -> None:
        self.image, self.command, self.pipeline_root = image, list(full_command), pipeline_root
        self.env_vars = dict(env_vars or {})

    def run(self) -> status.Status:
        text = " ".join(self.command)
        with _lock:
            COMMANDS.append(self.command)
            hit = next((f for f in sorted(FAULTS) if f in text), None)
            if hit is not None:
                FAULTS.discard(hit)
                EVICTED.append(hit)
                return status.Status.FAILURE
        root = str(Path(self.pipeline_root).resolve())
        for arg in self.command:  # output files and artifact paths: create their directories
            for part in arg.split("="):
                if part.startswith(root) or part.startswith(self.pipeline_root):
                    Path(part).parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update(self.env_vars)
        env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
        proc = subprocess.run(self.command, env=env, timeout=300)
        return status.Status.SUCCESS if proc.returncode == 0 else status.Status.FAILURE


@contextlib.contextmanager
def installed(pipeline_root: str) -> Iterator[None]:
    """kfp.local initialised with the SubprocessRunner and this handler in place of its own."""
    from kfp import local
    from kfp.local import subprocess_task_handler

    saved = subprocess_task_handler.SubprocessTaskHandler
    subprocess_task_handler.SubprocessTaskHandler = ProcessTaskHandler
    FAULTS.clear()
    EVICTED.clear()
    COMMANDS.clear()
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=pipeline_root)
    try:
        yield
    finally:
        subprocess_task_handler.SubprocessTaskHandler = saved


def run_compiled(exp: object, tmp_path: Path, faults: set[str] = frozenset(), **kw: object) -> dict:
    """Compile Katib Experiment ``exp`` (retries without backoff), run it under kfp.local with this
    handler; the pipeline's outputs (``status``, ``best_*``) and the report's artifacts (``report``,
    ``report_html``, ``metrics``: paths and metadata, read before kfp.local cleans up)."""
    from kfp import compiler, components

    from hp_components.kfp._api import experiment_pipeline

    path = tmp_path / "pipeline.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(experiment_pipeline(exp, retry_backoff="0s", **kw), str(path))
    comp = components.load_component_from_file(str(path))
    with installed(str(tmp_path / "root")):
        FAULTS.update(faults)
        task = comp()
    out = {k: task.outputs[k] for k in ("status", "best_trial", "best_parameters", "best_objective")}
    return out


def trial_commands() -> list[List[str]]:
    """The trial pods' commands that ran (the metrics wrapper's ``--objective`` is in them only)."""
    return [c for c in COMMANDS if "--objective" in c]
