"""The training recipe's optimizer: Adam or SGD (Nesterov, weight decay), a constant or warmed-up cosine learning
rate, and optionally an exponential moving average of the weights. One builder for teachers and students alike.

The defaults (adam, constant, no EMA) build exactly the reference notebook's `keras.optimizers.Adam(lr)`.
"""

from __future__ import annotations

import math

import keras

OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("constant", "cosine")
CHECKPOINTS = ("last", "best")


def learning_rate(base: float, schedule: str, steps_per_epoch: int, epochs: int, warmup_epochs: int = 1):
    """A float (constant) or a CosineDecay that rises linearly from 0 to `base` over `warmup_epochs` and then
    decays to 0 by the run's last step (steps_per_epoch x epochs in all)."""
    if schedule == "constant":
        return base
    if schedule != "cosine":
        raise ValueError(f"unknown schedule '{schedule}'; allowed: {', '.join(SCHEDULES)}")
    total, warmup = steps_per_epoch * epochs, steps_per_epoch * warmup_epochs
    if warmup >= total:
        raise ValueError(f"warmup_epochs {warmup_epochs} leaves no epoch to decay over in a run of {epochs}; "
                         "use fewer warm-up epochs")
    if warmup == 0:
        return keras.optimizers.schedules.CosineDecay(base, decay_steps=total)
    return keras.optimizers.schedules.CosineDecay(0.0, decay_steps=total - warmup, warmup_target=base,
                                                  warmup_steps=warmup)


def optimizer(name: str, base_learning_rate: float, *, steps_per_epoch: int, epochs: int,
              schedule: str = "constant", warmup_epochs: int = 1, momentum: float = 0.9,
              weight_decay: float = 5e-4, ema: float | None = None) -> keras.optimizers.Optimizer:
    """The recipe's optimizer. momentum and weight_decay apply to sgd only (Adam stays the reference's plain Adam).

    Keras's weight decay is decoupled (each step multiplies the weights by 1 - lr x weight_decay, outside the
    momentum), unlike PyTorch's SGD, whose weight_decay is an L2 term that goes through the momentum.
    ema: the decay of the weights' moving average (e.g. 0.999), or None; Keras writes the averaged weights into
    the model at the end of fit (see kdbench.train.averaged_weights for the per-epoch validation).
    """
    rate = learning_rate(base_learning_rate, schedule, steps_per_epoch, epochs, warmup_epochs)
    averaging = {"use_ema": True, "ema_momentum": ema} if ema is not None else {}
    if name == "adam":
        return keras.optimizers.Adam(rate, **averaging)
    if name == "sgd":
        return keras.optimizers.SGD(rate, momentum=momentum, nesterov=True, weight_decay=weight_decay or None,
                                    **averaging)
    raise ValueError(f"unknown optimizer '{name}'; allowed: {', '.join(OPTIMIZERS)}")


def steps_per_epoch(num_images: int, batch_size: int) -> int:
    """Optimizer steps in one epoch (the last batch may be short)."""
    return math.ceil(num_images / batch_size)


def from_args(args, num_images: int) -> keras.optimizers.Optimizer:
    """The optimizer a training script's recipe flags (cli.add_training_args) ask for."""
    return optimizer(args.optimizer, args.learning_rate, steps_per_epoch=steps_per_epoch(num_images, args.batch_size),
                     epochs=args.epochs, schedule=args.schedule, warmup_epochs=args.warmup_epochs,
                     momentum=args.momentum, weight_decay=args.weight_decay, ema=args.ema)
