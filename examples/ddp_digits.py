"""A distributed (torch.distributed, gloo, CPU) trainer on scikit-learn's digits: one process per rank.

Each rank trains a small softmax classifier on its shard of the training set; gradients are
averaged across ranks every step (what DistributedDataParallel does), so all ranks hold the same
model. Rank 0 prints Katib-style metrics per epoch. It needs the rendezvous environment a
PyTorchJob's pods get (and hp-tune's local runner gives its processes): ``MASTER_ADDR``,
``MASTER_PORT``, ``WORLD_SIZE``, ``RANK``.

    MASTER_ADDR=127.0.0.1 MASTER_PORT=29500 WORLD_SIZE=1 RANK=0 python3 examples/ddp_digits.py --lr 0.1 --epochs 5
"""

from __future__ import annotations

import argparse

import torch
import torch.distributed as dist
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lr", type=float, required=True)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--epochs", type=int, default=15)
    args = p.parse_args()
    dist.init_process_group("gloo", init_method="env://")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    x, y = load_digits(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(x / 16.0, y, test_size=0.25, random_state=0)
    shard = slice(rank, None, world)
    xt, yt = torch.tensor(x_train[shard], dtype=torch.float32), torch.tensor(y_train[shard])
    xv, yv = torch.tensor(x_val, dtype=torch.float32), torch.tensor(y_val)
    model = torch.nn.Linear(64, 10)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    for epoch in range(1, args.epochs + 1):
        for i in range(0, len(xt), 64):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(xt[i:i + 64]), yt[i:i + 64]).backward()
            for param in model.parameters():  # average the gradients over ranks
                dist.all_reduce(param.grad)
                param.grad /= world
            opt.step()
        if rank == 0:
            with torch.no_grad():
                accuracy = (model(xv).argmax(1) == yv).float().mean().item()
            print(f"epoch={epoch} Validation-accuracy={accuracy:.4f} world-size={world}", flush=True)
    # every rank reaches the end before any tears the group down: a rank destroying it while another is still
    # at work can abort that one in gloo's threads ("terminate called without an active exception", SIGABRT)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
