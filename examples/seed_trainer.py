"""The seed experiment's trainer: a small neural network on scikit-learn's bundled digits.

Katib's classic example tunes lr, num-layers and optimizer of an MXNet MNIST model; this does
the same on digits with scikit-learn's MLPClassifier, printing Katib-style metrics per epoch:
``Validation-accuracy=...`` and ``Train-accuracy=...``.

    python3 examples/seed_trainer.py --lr 0.02 --num-layers 3 --optimizer adam
"""

from __future__ import annotations

import argparse
import sys
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

# scikit-learn has no FTRL; plain SGD without momentum stands in for it
SOLVERS = {"sgd": ("sgd", 0.9), "adam": ("adam", 0.9), "ftrl": ("sgd", 0.0)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lr", type=float, required=True)
    p.add_argument("--num-layers", type=int, required=True)
    p.add_argument("--optimizer", choices=sorted(SOLVERS), required=True)
    p.add_argument("--epochs", type=int, default=10)
    a = p.parse_args()

    x, y = load_digits(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    scaler = StandardScaler().fit(x_train)
    x_train, x_val = scaler.transform(x_train), scaler.transform(x_val)
    solver, momentum = SOLVERS[a.optimizer]
    model = MLPClassifier(hidden_layer_sizes=(32,) * a.num_layers, solver=solver, momentum=momentum,
                          learning_rate_init=a.lr, batch_size=64, random_state=0)
    classes = np.unique(y)
    for epoch in range(1, a.epochs + 1):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.partial_fit(x_train, y_train, classes=classes)
        print(f"Epoch[{epoch}] Train-accuracy={model.score(x_train, y_train):.4f}", flush=True)
        print(f"Epoch[{epoch}] Validation-accuracy={model.score(x_val, y_val):.4f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
