"""The reference notebook's models as kdbench builds them: parameter counts, frozen parts, weights errors."""

import numpy as np
import pytest

from kdbench import KdbenchError, architectures
from kdbench.architectures import resnet50


def build_teacher(weights, upsample, frozen):
    return architectures.build("resnet50", 10, upsample, weights=weights, train_backbone=not frozen)


def build_resnet18(upsample):
    return architectures.build("resnet18", 10, upsample)


def conv(k, cin, cout):
    return k * k * cin * cout + cout  # kernel + bias


def bn(c):
    return 4 * c  # gamma, beta, moving mean, moving variance


def resnet18_params():
    total = conv(7, 3, 64) + bn(64)
    cin = 64
    for stage, c in enumerate([64, 128, 256, 512]):
        for block in range(2):
            down = stage > 0 and block == 0
            total += conv(3, cin, c) + bn(c) + conv(3, c, c) + bn(c)
            if down:
                total += conv(1, cin, c) + bn(c)
            cin = c
    return total + 512 * 10 + 10


def resnet50_notop_params():
    total = conv(7, 3, 64) + bn(64)
    cin = 64
    for filters, blocks in [(64, 3), (128, 4), (256, 6), (512, 3)]:
        for block in range(blocks):
            total += conv(1, cin, filters) + bn(filters) + conv(3, filters, filters) + bn(filters)
            total += conv(1, filters, 4 * filters) + bn(4 * filters)
            if block == 0:
                total += conv(1, cin, 4 * filters) + bn(4 * filters)
            cin = 4 * filters
    return total


HEAD_PARAMS = bn(2048) + (2048 * 128 + 128) + bn(128) + (128 * 64 + 64) + bn(64) + (64 * 10 + 10)
HEAD_NON_TRAINABLE = 2 * (2048 + 128 + 64)


@pytest.mark.parametrize("upsample, size", [(1, 32), (2, 64), (8, 256)])
def test_resnet18_shape_and_parameter_count(upsample, size):
    model = build_resnet18(upsample)
    assert model.count_params() == resnet18_params()
    assert model.output_shape == (None, 10)
    assert model.get_layer("stem_conv").input.shape[1] == size
    assert model.get_layer("preprocess").dtype_policy.compute_dtype == "float32"  # caffe inside the model
    assert model.layers[-1].get_config()["activation"] == "linear"  # logits, not softmax


def test_resnet18_has_projection_only_on_downsampling_blocks():
    model = build_resnet18(1)
    names = {layer.name for layer in model.layers}
    assert {"stage2_block1_proj", "stage3_block1_proj", "stage4_block1_proj"} <= names
    assert not {"stage1_block1_proj", "stage2_block2_proj"} & names


def test_frozen_teacher_trains_only_the_head():
    teacher = build_teacher(None, upsample=1, frozen=True)
    assert teacher.count_params() == resnet50_notop_params() + HEAD_PARAMS
    trainable = sum(int(np.prod(w.shape)) for w in teacher.trainable_weights)
    assert trainable == HEAD_PARAMS - HEAD_NON_TRAINABLE
    assert teacher.output_shape == (None, 10)


def test_finetuned_teacher_trains_backbone_too():
    teacher = build_teacher(None, upsample=1, frozen=False)
    trainable = sum(int(np.prod(w.shape)) for w in teacher.trainable_weights)
    assert trainable > resnet50_notop_params() // 2


def test_frozen_backbone_batchnorm_runs_in_inference_mode():
    teacher = build_teacher(None, upsample=1, frozen=True)
    backbone = teacher.get_layer("backbone")
    x = np.random.default_rng(0).normal(size=(4, 32, 32, 3)).astype("float32") * 50
    before = [w.numpy().copy() for w in backbone.weights]
    np.testing.assert_allclose(backbone(x, training=True), backbone(x, training=False), rtol=1e-5, atol=1e-5)
    after = [w.numpy() for w in backbone.weights]
    assert all(np.array_equal(a, b) for a, b in zip(before, after))  # moving statistics unchanged


def test_upsample_must_be_power_of_two():
    with pytest.raises(KdbenchError, match="power of two"):
        build_resnet18(3)


def test_missing_weights_file_is_reported(tmp_path):
    with pytest.raises(KdbenchError, match="not a file"):
        build_teacher(str(tmp_path / "nope.h5"), upsample=1, frozen=True)


def test_offline_imagenet_weights_error_names_the_cache_file(monkeypatch, tmp_path):
    import keras

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(keras.applications, "ResNet50", offline)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(KdbenchError) as err:
        build_teacher("imagenet", upsample=1, frozen=True)
    assert str(tmp_path / "models" / resnet50.SPEC.notop_weights_file) in str(err.value)
    assert "weights: null" in str(err.value)


def test_preprocessing_inside_the_model_is_keras_caffe_preprocessing():
    from keras.applications.resnet50 import preprocess_input

    from kdbench.architectures.layers import CaffePreprocess

    x = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_array_equal(CaffePreprocess()(x).numpy(), preprocess_input(x.copy()))


def test_bn_momentum_option_reaches_every_batchnorm_and_survives_saving(tmp_path):
    import keras

    def momenta(model):
        return {layer.momentum for layer in model._flatten_layers()
                if isinstance(layer, keras.layers.BatchNormalization)}

    assert momenta(build_resnet18(1)) == {0.99}  # the reference's (Keras's default)
    model = architectures.build("resnet18", 10, 1, bn_momentum=0.9)
    assert momenta(model) == {0.9}
    model.save(tmp_path / "m.keras")
    assert momenta(keras.models.load_model(tmp_path / "m.keras")) == {0.9}
