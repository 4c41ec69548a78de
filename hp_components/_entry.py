"""The ``hp-tune`` console script: the pipeline steps are dispatched before the CLI is imported.

``hp-tune step ...`` (every suggest, collect and launch pod of a KFP or Argo run) goes to
:mod:`hp_components._step_cli`, which loads neither typer, rich nor the SQL store; everything
else to :func:`hp_components.cli.main`::

    from hp_components._entry import main
    main(["validate", "examples/random-digits.yaml"])
"""

from __future__ import annotations

import sys

from hp_components._step_cli import is_step, run_step

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``hp-tune``."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if is_step(argv):
        return run_step(argv)
    from hp_components.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
