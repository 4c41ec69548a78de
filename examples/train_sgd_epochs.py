"""A small trainer for the hyperband example: SGD with momentum on a synthetic regression, for ``--epochs``.

It stands in for Katib's pytorch-mnist image (same flags, ``loss=...`` printed per epoch, the
StdOut collector's format), and it respects the resource parameter: more epochs, lower loss::

    python3 examples/train_sgd_epochs.py --epochs=2 --lr=0.03 --momentum=0.7
"""

from __future__ import annotations

import argparse
import random


def train(epochs: int, lr: float, momentum: float, batch_size: int, seed: int = 0) -> float:
    """The mean squared error on held-out data after ``epochs`` passes of minibatch SGD."""
    rng = random.Random(seed)
    w_true = [rng.uniform(-1, 1) for _ in range(8)]
    data = []
    for _ in range(196):
        x = [rng.gauss(0, 1) for _ in range(8)]
        data.append((x, sum(a * b for a, b in zip(w_true, x)) + rng.gauss(0, 0.1)))
    train_set, test_set = data[:96], data[96:]
    w, velocity = [0.0] * 8, [0.0] * 8
    for epoch in range(1, epochs + 1):
        rng.shuffle(train_set)
        for start in range(0, len(train_set), batch_size):
            batch = train_set[start:start + batch_size]
            grad = [0.0] * 8
            for x, y in batch:
                err = sum(a * b for a, b in zip(w, x)) - y
                for j in range(8):
                    grad[j] += 2 * err * x[j] / len(batch)
            velocity = [momentum * v - lr * g for v, g in zip(velocity, grad)]
            w = [a + v for a, v in zip(w, velocity)]
        loss = sum((sum(a * b for a, b in zip(w, x)) - y) ** 2 for x, y in test_set) / len(test_set)
        print(f"epoch {epoch}:", flush=True)
        print(f"loss={loss:.6f}", flush=True)
    return loss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, required=True)
    parser.add_argument("--momentum", type=float, default=0.5)
    args = parser.parse_args()
    train(args.epochs, args.lr, args.momentum, args.batch_size)


if __name__ == "__main__":
    main()
