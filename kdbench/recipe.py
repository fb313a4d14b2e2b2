"""The training recipe's optimizer: Adam or SGD, a constant, warmed-up cosine or multistep learning rate, and
optionally an exponential moving average of the weights. One builder for teachers and students alike.

The defaults (adam, constant, no EMA) build exactly the reference notebook's `keras.optimizers.Adam(lr)`.
SGD comes in two flavours of weight decay (weight_decay_mode):
- "decoupled" (the default, presets/stable.yaml): Keras's SGD, whose weight decay multiplies the weights by
  1 - lr x weight_decay each step, outside the momentum;
- "l2": PyTorch's torch.optim.SGD, as the CRD/DKD recipe runs it: weight_decay x w joins the gradient before the
  momentum buffer (b = mu b + g + wd w; w -= lr b), see TorchSGD.
"""

from __future__ import annotations

import math

import keras
from keras import ops

OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("constant", "cosine", "multistep")
WEIGHT_DECAY_MODES = ("decoupled", "l2")
CHECKPOINTS = ("last", "best")


@keras.saving.register_keras_serializable(package="kdbench")
class MultiStepDecay(keras.optimizers.schedules.LearningRateSchedule):
    """PyTorch's MultiStepLR on optimizer steps: `base` x decay^k, k the number of boundaries <= the step.

    boundaries: the first step (0-based, as Keras counts optimizer.iterations) of each decayed piece, i.e.
    milestone epoch x steps per epoch: with milestones [150, 180], epochs 0-149 (0-based) train at `base`,
    150-179 at base x decay and 180 on at base x decay^2, as MultiStepLR stepped once per epoch does.
    """

    def __init__(self, base: float, boundaries, decay: float):
        self.base, self.boundaries, self.decay = float(base), [int(b) for b in boundaries], float(decay)

    def __call__(self, step):
        if not self.boundaries:
            return ops.convert_to_tensor(self.base, "float32")
        passed = ops.greater_equal(ops.cast(step, "float32"), ops.convert_to_tensor(self.boundaries, "float32"))
        return self.base * ops.power(self.decay, ops.sum(ops.cast(passed, "float32")))

    def get_config(self):
        return {"base": self.base, "boundaries": self.boundaries, "decay": self.decay}


@keras.saving.register_keras_serializable(package="kdbench")
class TorchSGD(keras.optimizers.SGD):
    """torch.optim.SGD's update (dampening 0) in keras.ops, so it runs on every Keras backend:

        g' = g + l2 x w            (weight decay as an L2 term of the loss, before the momentum)
        b  = momentum x b + g'     (b = g' at the first step: the buffer starts at zero)
        w  = w - lr x (g' + momentum x b if nesterov else b)

    Unlike Keras's SGD (velocity = mu v - lr g), the learning rate multiplies the whole buffer at every step, so
    a step decay (MultiStepDecay) acts on the buffer at once, as in PyTorch. Keras's own (decoupled)
    weight_decay stays off here; `l2` is the PyTorch `weight_decay`.
    """

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, l2=0.0, **kwargs):
        kwargs.pop("weight_decay", None)  # from a saved config: always None here
        super().__init__(learning_rate, momentum=momentum, nesterov=nesterov, weight_decay=None, **kwargs)
        self.l2 = float(l2)

    def update_step(self, gradient, variable, learning_rate):
        learning_rate = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        if self.l2:
            gradient = ops.add(gradient, ops.multiply(ops.cast(self.l2, variable.dtype), variable))
        if self.momentum == 0:
            self.assign_sub(variable, ops.multiply(gradient, learning_rate))
            return
        buffer = self.momentums[self._get_variable_index(variable)]
        momentum = ops.cast(self.momentum, variable.dtype)
        self.assign(buffer, ops.add(ops.multiply(buffer, momentum), gradient))
        step = ops.add(gradient, ops.multiply(buffer, momentum)) if self.nesterov else buffer
        self.assign_sub(variable, ops.multiply(step, learning_rate))

    def get_config(self):
        return {**super().get_config(), "l2": self.l2}


def learning_rate(base: float, schedule: str, steps_per_epoch: int, epochs: int, warmup_epochs: int = 1,
                  milestones=(), decay: float = 0.1):
    """A float (constant); a CosineDecay that rises linearly from 0 to `base` over `warmup_epochs` and then
    decays to 0 by the run's last step (steps_per_epoch x epochs in all); or (multistep) `base` multiplied by
    `decay` at the start of each milestone epoch (PyTorch's MultiStepLR, milestones counted in epochs)."""
    if schedule == "constant":
        return base
    if schedule == "multistep":
        milestones = [int(m) for m in milestones]
        if not milestones or milestones != sorted(set(milestones)) or milestones[0] < 1:
            raise ValueError(f"multistep needs increasing milestone epochs >= 1; got {milestones}")
        if milestones[-1] >= epochs:
            raise ValueError(f"milestone epoch {milestones[-1]} is not inside a run of {epochs} epoch{'s' * (epochs != 1)} (it would "
                             "never apply); use milestones below the number of epochs")
        if not 0 < decay <= 1:
            raise ValueError(f"the multistep decay factor must be in (0, 1]; got {decay}")
        return MultiStepDecay(base, [m * steps_per_epoch for m in milestones], decay)
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
              weight_decay: float = 5e-4, ema: float | None = None, weight_decay_mode: str = "decoupled",
              nesterov: bool = True, milestones=(), decay: float = 0.1) -> keras.optimizers.Optimizer:
    """The recipe's optimizer. momentum, weight_decay, weight_decay_mode and nesterov apply to sgd only (Adam stays
    the reference's plain Adam).

    weight_decay_mode "decoupled": Keras's SGD, whose weight decay multiplies the weights by 1 - lr x weight_decay
    each step, outside the momentum; "l2": PyTorch's SGD (TorchSGD), whose weight_decay is an L2 term that goes
    through the momentum. nesterov: Nesterov momentum (the stable recipe's) or plain momentum (PyTorch's default).
    ema: the decay of the weights' moving average (e.g. 0.999), or None; Keras writes the averaged weights into
    the model at the end of fit (see kdbench.train.averaged_weights for the per-epoch validation).
    """
    rate = learning_rate(base_learning_rate, schedule, steps_per_epoch, epochs, warmup_epochs, milestones, decay)
    averaging = {"use_ema": True, "ema_momentum": ema} if ema is not None else {}
    if name == "adam":
        return keras.optimizers.Adam(rate, **averaging)
    if name != "sgd":
        raise ValueError(f"unknown optimizer '{name}'; allowed: {', '.join(OPTIMIZERS)}")
    if weight_decay_mode == "decoupled":
        return keras.optimizers.SGD(rate, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay or None,
                                    **averaging)
    if weight_decay_mode == "l2":
        return TorchSGD(rate, momentum=momentum, nesterov=nesterov, l2=weight_decay, **averaging)
    raise ValueError(f"unknown weight_decay_mode '{weight_decay_mode}'; allowed: {', '.join(WEIGHT_DECAY_MODES)}")


def steps_per_epoch(num_images: int, batch_size: int) -> int:
    """Optimizer steps in one epoch (the last batch may be short)."""
    return math.ceil(num_images / batch_size)


def from_args(args, num_images: int) -> keras.optimizers.Optimizer:
    """The optimizer a training script's recipe flags (cli.add_training_args) ask for."""
    return optimizer(args.optimizer, args.learning_rate, steps_per_epoch=steps_per_epoch(num_images, args.batch_size),
                     epochs=args.epochs, schedule=args.schedule, warmup_epochs=args.warmup_epochs,
                     momentum=args.momentum, weight_decay=args.weight_decay, ema=args.ema,
                     weight_decay_mode=args.weight_decay_mode, nesterov=args.nesterov,
                     milestones=args.lr_milestones, decay=args.lr_decay)
