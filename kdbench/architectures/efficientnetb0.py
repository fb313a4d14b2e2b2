"""keras.applications EfficientNetB0 teacher (no top, global max pooling) + the reference's head.

The Keras model rescales and normalises its 0-255 inputs itself, so the teacher adds no preprocessing. With
weights: imagenet Keras also adds the input scaling those weights were trained with, which a weights file
cannot get: an offline machine puts efficientnetb0_notop.h5 in the Keras cache instead.
"""

from __future__ import annotations

from kdbench.architectures import applications

TEACHER = True
UPSAMPLE = None  # follows the configured model.upsample, like resnet50
SPEC = applications.Backbone(
    constructor="EfficientNetB0", preprocessing=None, notop_weights_file="efficientnetb0_notop.h5",
    # the last block at strides 4, 8, 16, 32 (24, 40, 112, 320 channels), before the final 1x1 conv to 1280
    # channels (top_activation), as for mobilenetv2
    stages={"stage1": "block2b_add", "stage2": "block3b_add", "stage3": "block5c_add",
            "stage4": "block7a_project_bn"},
    imagenet_only_graph=True)
STAGES = SPEC.stages

build, stage_model, features_model = applications.teacher(SPEC)
