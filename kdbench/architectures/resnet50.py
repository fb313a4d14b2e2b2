"""The reference notebook's teacher: keras.applications ResNet50 (no top, global max pooling) + an MLP head."""

from __future__ import annotations

from kdbench.architectures import applications

TEACHER = True  # builds a "backbone" and a "head" and takes weights and train_backbone
UPSAMPLE = None  # follows the configured model.upsample (the reference: x8, 256 px)
SPEC = applications.Backbone(
    constructor="ResNet50", preprocessing="caffe",
    notop_weights_file="resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
    # the last block of conv2_x .. conv5_x: strides 4, 8, 16, 32; 256, 512, 1024, 2048 channels
    stages={"stage1": "conv2_block3_out", "stage2": "conv3_block4_out", "stage3": "conv4_block6_out",
            "stage4": "conv5_block3_out"})
STAGES = SPEC.stages

build, stage_model, features_model = applications.teacher(SPEC)
