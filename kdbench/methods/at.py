"""Attention transfer: Zagoruyko & Komodakis, "Paying More Attention to Attention: Improving the Performance of
Convolutional Neural Networks via Attention Transfer", ICLR 2017.

The activation-based spatial attention map of a stage is Q = vec(mean over channels of A_c^2) (the paper's
F_sum^p with p = 2; mean and sum differ by a constant that the normalisation removes), L2-normalised per image:
  loss = CE(labels, student) + beta * sum over stage pairs of mean over (batch, positions) of (Q_s - Q_t)^2
This is the form of the authors' released code (szagoruyko/attention-transfer, cifar.py, which their README says
reproduces the paper's CIFAR table) with its beta 1000, and mdistiller's (weight 1000). The paper's eq. 2 writes
beta/2 times a norm of the difference, with beta 1000 "divided by the number of elements in the attention map and
batch size for each layer"; read with a squared norm that is the form above at half the weight (beta 500 here).

Stages: the paper transfers attention after every residual group of its CIFAR networks, so the default is all
four stages paired by name (stage1..stage4 of both networks); `stages` is one comma-separated string so that a
list of strings sweeps stage sets, e.g. ["stage3,stage4", "stage1,stage2,stage3,stage4"]. Paired stages have
the same spatial size when both networks see the same input; if they differ, the larger attention map (before
normalisation) is average-pooled to the smaller one in non-overlapping windows (one size must be a multiple of
the other). Channels may differ freely: the map has none.

Teacher cost: only the teacher's attention maps enter the loss, so a teacher "feature" may also be given as its
map, attention_map(stage output), of shape (batch, H, W): one value per position instead of one per channel
(at 256 px, 5,440 values an image for all four ResNet50 stages instead of 1.97 million), small enough to cache.
"""

from __future__ import annotations

from kdbench import KdbenchError

NEEDS = "features"
TERMS = ("hard", "at")
SETTINGS = {
    "beta": {"default": 1000.0, "schema": {"type": "number", "minimum": 0},
             "help": "attention loss weight: each stage pair adds beta * the mean squared difference of the "
                     "normalised maps (authors' code and mdistiller: 1000)"},
    "stages": {"default": "stage1,stage2,stage3,stage4",
               "schema": {"type": "string", "pattern": "^stage[1-4](,stage[1-4]){0,3}$"},
               "help": "comma-separated stages, each paired with the teacher's stage of the same name "
                       "(paper: every residual group)"},
}


def stage_pairs(settings: dict) -> list[tuple[str, str]]:
    stages = [stage.strip() for stage in str(settings["stages"]).split(",")]
    if len(set(stages)) != len(stages) or not all(s in {"stage1", "stage2", "stage3", "stage4"} for s in stages):
        raise KdbenchError(f"at: stages '{settings['stages']}' must name distinct stages among stage1..stage4, "
                           "comma-separated, e.g. 'stage2,stage3,stage4'")
    return [(stage, stage) for stage in stages]


def attention_map(features):
    """(batch, H, W, C) -> (batch, H, W): mean over channels of the squared activations, in float32; a rank-3
    input is taken as a map already (a cached teacher map) and returned as float32."""
    from keras import ops

    features = ops.cast(features, "float32")
    return features if len(features.shape) == 3 else ops.mean(ops.square(features), axis=-1)


def _normalised(maps):
    """Flatten each image's map and divide by its L2 norm (an all-zero map stays zero, with a finite gradient)."""
    from keras import ops

    flat = ops.reshape(maps, (ops.shape(maps)[0], -1))
    return flat * ops.rsqrt(ops.maximum(ops.sum(ops.square(flat), axis=-1, keepdims=True), 1e-12))


def loss_terms(settings: dict, labels, student_logits, teacher_logits, *, student_features=(),
               teacher_features=(), connectors=(), epoch=None) -> dict:
    """{"hard": CE, "at": beta * sum over pairs of mean((Q_s - Q_t)^2)}."""
    import keras
    from keras import ops

    from kdbench.methods.fitnets import pool_to

    if len(student_features) != len(teacher_features) or not student_features:
        raise KdbenchError(f"at: got {len(student_features)} student and {len(teacher_features)} teacher feature "
                           "maps; pass one of each per stage pair, in stage_pairs order")
    hard = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, ops.cast(student_logits, "float32"))
    total = 0.0
    for student, teacher in zip(student_features, teacher_features):
        s_map, t_map = attention_map(student), attention_map(teacher)
        size = (min(s_map.shape[1], t_map.shape[1]), min(s_map.shape[2], t_map.shape[2]))
        s_map = pool_to(s_map[..., None], size)[..., 0]
        t_map = pool_to(t_map[..., None], size)[..., 0]
        total = total + ops.mean(ops.square(_normalised(s_map) - _normalised(t_map)))
    return {"hard": hard, "at": float(settings["beta"]) * total}
