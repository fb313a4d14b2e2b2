"""FitNets hint learning: Romero, Ballas, Kahou, Chassang, Gatta & Bengio, "FitNets: Hints for Thin Deep Nets",
ICLR 2015.

A trainable connector r (1x1 convolution without bias, then batch normalisation; the paper's regressor is a
convolution, mdistiller's a 3x3 one with batch norm and ReLU) maps the student's guided stage onto the teacher's
hint stage:
  loss = CE(labels, student) + weight * mean((r(f_s) - f_t)^2)   (mean over batch, positions and channels)
The connector trains with the student (its batch normalisation always in training mode, since it exists only
to train) and is never saved with it.

Departures from the paper, as mdistiller's CIFAR FitNet: the paper trains in two stages (hints alone up to the
guided layer, then KD on the whole student); here the hint and the hard labels train jointly from the first step.
The paper's hint loss is half the summed squared error, whose scale grows with the feature map; the mean here
with mdistiller's weight 100 keeps it independent of the stage's size. The right weight depends on the
teacher's activation scale: sweep it (e.g. [10, 100, 1000]) on the validation split.

Stages: the paper guides the student's middle layer with the teacher's middle layer; the default pairs stage2
with stage2, the middle of both networks by residual blocks (block 4 of ResNet18's 8, block 7 of ResNet50's 16),
as mdistiller's hint layer 2 is the middle of its CIFAR ResNets' three stages. The two stages have the same
spatial size when both networks see the same input; if they differ, the larger map is average-pooled to the
smaller (non-overlapping windows, so one size must be a multiple of the other) before the loss, the student's
before the connector.
"""

from __future__ import annotations

from kdbench import KdbenchError

_STAGE = {"type": "string", "enum": ["stage1", "stage2", "stage3", "stage4"]}

NEEDS = "features"
TERMS = ("hard", "hint")
SETTINGS = {
    "weight": {"default": 100.0, "schema": {"type": "number", "minimum": 0},
               "help": "weight of the hint loss, a mean squared error (mdistiller's CIFAR config: 100)"},
    "student_stage": {"default": "stage2", "schema": _STAGE,
                      "help": "the student's guided stage (paper: the middle layer)"},
    "teacher_stage": {"default": "stage2", "schema": _STAGE,
                      "help": "the teacher's hint stage (paper: the middle layer)"},
}


def stage_pairs(settings: dict) -> list[tuple[str, str]]:
    return [(settings["student_stage"], settings["teacher_stage"])]


def connectors(settings: dict, student_shapes, teacher_shapes) -> list:
    """One connector: 1x1 conv (no bias) + BN, student channels -> teacher channels, float32 in any policy."""
    import keras
    from keras import layers

    (student_shape,), (teacher_shape,) = student_shapes, teacher_shapes
    connector = keras.Sequential([
        keras.Input(shape=(None, None, int(student_shape[-1]))),
        layers.Conv2D(int(teacher_shape[-1]), 1, use_bias=False, dtype="float32", name="fitnets_conv"),
        layers.BatchNormalization(dtype="float32", name="fitnets_bn"),
    ], name="fitnets_connector")
    return [connector]


def pool_to(x, size):
    """Average-pool a (batch, H, W, C) map down to `size` = (h, w); H, W must be multiples of h, w."""
    from keras import ops

    height, width = int(x.shape[1]), int(x.shape[2])
    if (height, width) == tuple(size):
        return x
    if height % size[0] or width % size[1]:
        raise KdbenchError(f"cannot pool a {height}x{width} feature map to {size[0]}x{size[1]}: choose stages "
                           "whose spatial sizes are multiples of each other")
    window = (height // size[0], width // size[1])
    return ops.average_pool(x, window, strides=window, padding="valid")


def loss_terms(settings: dict, labels, student_logits, teacher_logits, *, student_features=(),
               teacher_features=(), connectors=(), epoch=None) -> dict:
    """{"hard": CE, "hint": weight * MSE(connector(student stage), teacher stage)}."""
    import keras
    from keras import ops

    hard = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, ops.cast(student_logits, "float32"))
    if not (len(student_features) == len(teacher_features) == len(connectors) == 1):
        raise KdbenchError(f"fitnets: got {len(student_features)} student and {len(teacher_features)} teacher "
                           f"feature maps and {len(connectors)} connectors; pass one of each, the connector from "
                           "fitnets.connectors()")
    (student,), (teacher,), (connector,) = student_features, teacher_features, connectors
    student, teacher = ops.cast(student, "float32"), ops.cast(teacher, "float32")
    size = (min(student.shape[1], teacher.shape[1]), min(student.shape[2], teacher.shape[2]))
    guided = connector(pool_to(student, size), training=True)
    hint = ops.mean(ops.square(guided - pool_to(teacher, size)))
    return {"hard": hard, "hint": float(settings["weight"]) * hint}
