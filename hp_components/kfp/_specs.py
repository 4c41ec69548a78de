"""component_specs/: the step components as KFP component YAMLs, generated from code.

    python -m hp_components.kfp._specs                 # rewrite component_specs/ (default image)
    python -m hp_components.kfp._specs --check         # exit 1 if the checked-in files are stale

Each file loads with ``kfp.components.load_component_from_file``:

* ``kfp-suggest.yaml``, ``kfp-gather.yaml``, ``kfp-gather-metrics.yaml``, ``kfp-no-trials.yaml``,
  ``kfp-collect.yaml``, ``kfp-report.yaml``: the tuning steps (the state passes between them as an artifact) (hp-components image, see the Dockerfile);
* ``kfp-trial-wrapper.yaml``: the metrics wrapper around any training command, for your own
  container trials. Inputs: ``objective``, ``command`` (a JSON list, run without a shell),
  ``options`` (more wrapper flags, a JSON list: ``["--metric", "loss", "--timeout", "3600"]``),
  ``hp_wrapper`` (an artifact: the ``wrapper`` output of ``kfp-suggest``, hp_components/metrics.py
  written once per run, so the 36 KB source is in no component, command or parameter);
  output: ``observation`` (what ``collect`` reads). Its image is ``python:3.11-slim``: replace
  it with your training image (only ``python3`` is needed there)::

      s = suggest(experiment=exp_json, config=config, history=[])
      with dsl.ParallelFor(s.outputs["trials"]) as item:
          t = trial_wrapper(objective="loss", command=..., hp_wrapper=s.outputs["wrapper"])
"""

from __future__ import annotations

import argparse
import filecmp
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from hp_components.steps import DEFAULT_IMAGE

__all__ = ["SPEC_DIR", "write_component_specs", "trial_wrapper_text"]

SPEC_DIR = Path(__file__).resolve().parents[2] / "component_specs"

# argv[1]: the wrapper's path (the hp_wrapper artifact), [2]: objective, [3]: options (JSON list),
# [4]: output path, [5]: command (JSON list)
_BOOT = ("import json, sys; path, objective, opts, out, cmd = sys.argv[1:6]; "
         "sys.argv = [path, '--objective', objective] + json.loads(opts or '[]') + ['--output', out, '--'] "
         "+ json.loads(cmd); "
         "exec(compile(open(path, encoding='utf-8').read(), path, 'exec'), {'__name__': '__main__'})")


def trial_wrapper_text(image: str = "python:3.11-slim") -> str:
    """The generic trial wrapper as a (v1-format) component YAML."""
    spec = {
        "name": "hp-trial-wrapper",
        "description": "Run a training command as a Katib trial and collect its metrics (hp-components metrics wrapper).",
        "inputs": [
            {"name": "objective", "type": "String", "description": "objective metric name"},
            {"name": "command", "type": "String", "description": "the training command, a JSON list"},
            {"name": "options", "type": "String", "default": "[]", "description": "more wrapper flags, a JSON list"},
            {"name": "hp_wrapper", "type": "Artifact",
             "description": "the metrics wrapper, hp_components/metrics.py (kfp-suggest's wrapper output)"},
        ],
        "outputs": [{"name": "observation", "type": "String"}],
        "implementation": {"container": {
            "image": image,
            "command": ["python3", "-c", _BOOT, {"inputPath": "hp_wrapper"},
                        {"inputValue": "objective"}, {"inputValue": "options"}, {"outputPath": "observation"},
                        {"inputValue": "command"}],
        }},
    }
    return yaml.safe_dump(spec, sort_keys=False, width=120)


def _components(image: str) -> dict[str, Any]:
    from kfp import components

    from hp_components.kfp._components import step_components

    steps = step_components(image)
    return {
        "kfp-suggest.yaml": steps.suggest,
        "kfp-collect.yaml": steps.collect,
        "kfp-gather.yaml": steps.gather,
        "kfp-gather-metrics.yaml": steps.gather_metrics,
        "kfp-no-trials.yaml": steps.no_trials,
        "kfp-report.yaml": steps.report,
        "kfp-trial-wrapper.yaml": components.load_component_from_text(trial_wrapper_text()),
    }


def write_component_specs(directory: Path | str = SPEC_DIR, image: str = DEFAULT_IMAGE) -> list[Path]:
    """Write every component YAML into ``directory``; returns the paths."""
    from kfp import compiler

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, comp in _components(image).items():
        path = out / name
        compiler.Compiler().compile(comp, str(path))
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Generate component_specs/ (KFP component YAMLs)")
    ap.add_argument("--check", action="store_true", help="only compare with the files on disk")
    ap.add_argument("--image", default=DEFAULT_IMAGE)
    ap.add_argument("--dir", type=Path, default=SPEC_DIR)
    args = ap.parse_args(argv)
    if not args.check:
        for p in write_component_specs(args.dir, args.image):
            print(f"wrote {p}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        stale = [p.name for p in write_component_specs(tmp, args.image)
                 if not (args.dir / p.name).exists() or not filecmp.cmp(p, args.dir / p.name, shallow=False)]
    for name in stale:
        print(f"stale: {args.dir / name} (run python -m hp_components.kfp._specs)")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
