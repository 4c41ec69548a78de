"""Example: tune a lightweight training component, then train the final model with the best parameters.

    python pipelines/kfp_tune_example.py                 # writes pipelines/kfp-tune-example.yaml
    python pipelines/kfp_tune_example.py --local         # runs it here with kfp.local (no cluster)

In a cluster the tuning steps run in the hp-components image (see the repository's Dockerfile;
``--image`` / ``HP_IMAGE`` to use your own build). The trial component stands in for your training
code: a quadratic bowl with a categorical twist, so the example finishes in seconds.
"""


import argparse
import os
from pathlib import Path

from kfp import compiler, dsl, local

from hp_components.kfp import DEFAULT_IMAGE, tune

IMAGE = os.environ.get("HP_IMAGE", DEFAULT_IMAGE)
HERE = Path(__file__).parent


@dsl.component(base_image="python:3.11-slim")
def train(lr: float, layers: int, optimizer: str) -> float:
    """One training run; returns the validation accuracy."""
    import math

    accuracy = 0.95 - (math.log10(lr) + 2.0) ** 2 * 0.05 - abs(layers - 3) * 0.02
    accuracy -= 0.03 if optimizer == "sgd" else 0.0
    print(f"accuracy={accuracy}")
    return accuracy


@dsl.component(base_image="python:3.11-slim")
def train_final(params: dict, best_accuracy: float) -> str:
    """The final model with the best parameters (here: a description of it)."""
    summary = f"final model: lr={params['lr']} layers={params['layers']} optimizer={params['optimizer']} " \
              f"(tuning accuracy {best_accuracy:.4f})"
    print(summary)
    return summary


@dsl.pipeline(name="kfp-tune-example", description="Tune a training component with hp-components, then train the final model.")
def tune_then_train(max_trials: int = 8) -> str:
    search = tune(
        train,
        parameters={"lr": (0.0001, 0.1, "log"), "layers": (1, 6), "optimizer": ["sgd", "adam"]},
        objective="accuracy", type="maximize", goal=0.949, algorithm="tpe",
        algorithm_settings={"random_state": 7}, max_trial_count=8, parallel_trial_count=3,
        max_failed_trial_count=4, image=IMAGE,
    )
    final = train_final(params=search.outputs["best_parameters"], best_accuracy=search.outputs["best_objective"])
    return final.output


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--local", action="store_true", help="run with kfp.local (SubprocessRunner, this Python)")
    ap.add_argument("-o", "--output", default=str(HERE / "kfp-tune-example.yaml"))
    args = ap.parse_args()
    if args.local:
        local.init(runner=local.SubprocessRunner(use_venv=False))
        print(tune_then_train())
    else:
        compiler.Compiler().compile(tune_then_train, args.output)
        print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
