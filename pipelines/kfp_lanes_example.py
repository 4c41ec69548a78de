"""Example: examples/tpe-digits-goal.yaml as KFP lanes (no round barrier) over a shared PostgreSQL store.

    python pipelines/kfp_lanes_example.py            # writes pipelines/kfp-lanes-example.yaml

the same as::

    hp-tune compile examples/tpe-digits-goal.yaml --target kfp --lanes \\
        --storage postgresql+psycopg://katib@katib-postgres.kubeflow:5432/hp --storage-secret hp-db \\
        -o pipelines/kfp-lanes-example.yaml

Before a run: ``kubectl create secret generic hp-db --from-literal=password=...`` in the
pipeline's namespace (the steps get it as HP_STORAGE_PASSWORD; the YAML holds no password).
"""

import argparse
import os
from pathlib import Path

from hp_components import load_experiment
from hp_components.kfp import DEFAULT_IMAGE, compile_experiment

HERE = Path(__file__).parent
STORAGE = "postgresql+psycopg://katib@katib-postgres.kubeflow:5432/hp"
SECRET = "hp-db"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", default=str(HERE / "kfp-lanes-example.yaml"))
    args = ap.parse_args()
    exp = load_experiment(HERE.parent / "examples" / "tpe-digits-goal.yaml")
    compile_experiment(exp, args.output, image=os.environ.get("HP_IMAGE", DEFAULT_IMAGE), lanes=True,
                       storage=STORAGE, storage_secret=SECRET)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
