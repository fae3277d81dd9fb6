"""The torch backend's maximum-likelihood loop, shared by every numeric policy it fits."""

from __future__ import annotations

import math


def maximise_likelihood(module, n: int, weights, batch_loss, config) -> tuple[float, float, float]:
    """AdamW over shuffled mini-batches for `config.epochs` (seeded by `config.seed`).

    `batch_loss(index, generator)` is the weighted negative log-likelihood of examples `index`
    (`generator` draws any augmentation; None means none). Returns the loss over all examples
    before training, the last epoch's mean and the loss after training.
    """
    import torch

    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    optimiser = torch.optim.AdamW(module.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    everything = torch.arange(n)
    with torch.no_grad():
        initial_loss = batch_loss(everything, None).item()
    epoch_loss = math.nan
    for _ in range(config.epochs):
        order = torch.randperm(n, generator=generator)
        total = weight = 0.0
        for start in range(0, n, config.batch_size):
            index = order[start:start + config.batch_size]
            loss = batch_loss(index, generator)
            optimiser.zero_grad()
            loss.backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(module.parameters(), config.grad_clip)
            optimiser.step()
            w = float(weights[index].abs().sum())
            total += loss.item() * w
            weight += w
        epoch_loss = total / weight
    with torch.no_grad():
        final_loss = batch_loss(everything, None).item()
    return initial_loss, epoch_loss, final_loss
