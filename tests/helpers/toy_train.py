"""A toy regression trained with mobpose.train.fit; run directly or under torchrun (tests/test_train_loop.py)."""

from __future__ import annotations

import sys

import torch

from mobpose.train import TrainConfig, fit


def make_dataset(n: int = 64) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    w = torch.tensor([[1.0, -2.0, 0.5, 3.0]]).t()
    return [(x[i], (x[i : i + 1] @ w)[0]) for i in range(n)]


def collate(samples):
    return torch.stack([s[0] for s in samples]), torch.stack([s[1] for s in samples])


def loss_fn(model, batch):
    x, y = batch
    return ((model(x) - y) ** 2).mean()


def run(out_dir: str, max_steps: int = 0, epochs: int = 4, lr: float = 0.05) -> torch.nn.Module:
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    config = TrainConfig(epochs=epochs, batch_size=8, lr=lr, weight_decay=0.0, schedule="constant",
                         checkpoint_every=3, max_steps=max_steps)
    fit(model, model_name="toy", model_config={"in": 4}, dataset=make_dataset(), collate=collate,
        loss_fn=loss_fn, config=config, out_dir=out_dir, progress=False)
    return model


if __name__ == "__main__":
    run(sys.argv[1])
