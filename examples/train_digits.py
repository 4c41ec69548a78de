"""Train a linear classifier on scikit-learn's bundled digits and report Katib-style metrics.

Each epoch prints ``epoch=N Validation-accuracy=... loss=...`` (the StdOut collector's format),
so a tuner can follow the trial as it learns. With ``--metrics-file PATH`` the same lines go to
that file instead (File collector), with an RFC 3339 timestamp in front, or as JSON lines with
``--json``.

    python3 examples/train_digits.py --lr 0.01 --alpha 0.0001 --penalty l2
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier
from sklearn.metrics import log_loss
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lr", type=float, required=True, help="initial learning rate (eta0)")
    p.add_argument("--alpha", type=float, default=1e-4, help="regularization strength")
    p.add_argument("--penalty", choices=["l2", "l1", "elasticnet"], default="l2")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--metrics-file", help="write metrics here instead of stdout")
    p.add_argument("--json", action="store_true", help="with --metrics-file: JSON lines")
    a = p.parse_args()

    x, y = load_digits(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    scaler = StandardScaler().fit(x_train)
    x_train, x_val = scaler.transform(x_train), scaler.transform(x_val)
    model = SGDClassifier(loss="log_loss", learning_rate="invscaling", eta0=a.lr, alpha=a.alpha,
                          penalty=a.penalty, random_state=0)
    classes = np.unique(y)
    if a.metrics_file and os.path.dirname(a.metrics_file):
        os.makedirs(os.path.dirname(a.metrics_file), exist_ok=True)
    out = open(a.metrics_file, "w") if a.metrics_file else sys.stdout
    rng = np.random.default_rng(0)
    for epoch in range(1, a.epochs + 1):
        order = rng.permutation(len(x_train))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.partial_fit(x_train[order], y_train[order], classes=classes)
        accuracy = model.score(x_val, y_val)
        loss = log_loss(y_val, np.clip(model.predict_proba(x_val), 1e-12, 1), labels=classes)
        if a.metrics_file and a.json:
            now = dt.datetime.now(dt.timezone.utc).isoformat()
            # Katib's JSON parser takes only string metric values
            out.write(json.dumps({"epoch": epoch, "Validation-accuracy": f"{accuracy:.4f}", "loss": f"{loss:.4f}",
                                  "timestamp": now}) + "\n")
            out.flush()
        elif a.metrics_file:
            now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            out.write(f"{now} epoch={epoch} Validation-accuracy={accuracy:.4f} loss={loss:.4f}\n")
            out.flush()
        else:
            print(f"epoch={epoch} Validation-accuracy={accuracy:.4f} loss={loss:.4f}", flush=True)
    if a.metrics_file:
        out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
