"""The reference's and keras.applications' architectures (the CIFAR zoo has tests/test_zoo.py) at tiny size (32 px, random weights): shapes, dtypes, stage taps, saving,
preprocessing, teacher features, and what makes resnet18-cifar CIFAR-native."""

from __future__ import annotations

import re

import keras
import numpy as np
import pytest
from test_zoo import ZOO

from kdbench import KdbenchError, architectures

# name -> (channels of stage1..stage4, their strides relative to the network's input)
EXPECTED_STAGES = {
    "resnet18": ((64, 128, 256, 512), (4, 8, 16, 32)),
    "resnet18-cifar": ((64, 128, 256, 512), (1, 2, 4, 8)),
    "mobilenetv2": ((24, 32, 96, 320), (4, 8, 16, 32)),
    "resnet50": ((256, 512, 1024, 2048), (4, 8, 16, 32)),
    "resnet101": ((256, 512, 1024, 2048), (4, 8, 16, 32)),
    "efficientnetb0": ((24, 40, 112, 320), (4, 8, 16, 32)),
}
TEACHERS = [name for name, module in architectures.ARCHITECTURES.items() if getattr(module, "TEACHER", False)]
# keras.applications' own preprocess_input of each architecture built on one (the model must do the same)
KERAS_PREPROCESS = {"mobilenetv2": "mobilenet_v2", "resnet50": "resnet50", "resnet101": "resnet",
                    "efficientnetb0": "efficientnet"}
IMAGES = np.random.default_rng(0).integers(0, 256, size=(2, 32, 32, 3)).astype("float32")

_models: dict = {}


def tiny(name: str, num_classes: int = 10, policy: str = "float32"):
    """`name` at 32 px (upsample 1), random weights, a frozen backbone for teachers; built once per session."""
    key = (name, num_classes, policy)
    if key not in _models:
        previous = keras.config.dtype_policy().name
        keras.config.set_dtype_policy(policy)
        try:
            options = {"weights": None, "train_backbone": False} if name in TEACHERS else {}
            _models[key] = architectures.build(name, num_classes, 1, **options)
        finally:
            keras.config.set_dtype_policy(previous)
    return _models[key]


def test_registry_declarations():
    assert set(EXPECTED_STAGES) | set(ZOO) == set(architectures.ARCHITECTURES)
    assert not set(EXPECTED_STAGES) & set(ZOO)
    assert set(TEACHERS) == {"resnet50", "resnet101", "efficientnetb0"}
    for name, module in architectures.ARCHITECTURES.items():
        stages = list(module.STAGES)  # four here, three or four in the zoo (the references' feature lists)
        assert stages[:3] == ["stage1", "stage2", "stage3"] and stages[3:] in ([], ["stage4"]), name
        assert callable(module.build) and callable(module.stage_model), name
        assert name not in TEACHERS or callable(module.features_model), name
    assert {name: architectures.upsample_for(name, 8) for name in EXPECTED_STAGES} == {
        "resnet18": 8, "resnet18-cifar": 1, "mobilenetv2": 2, "resnet50": 8, "resnet101": 8, "efficientnetb0": 8}


# resnet101 left out to save a build of its 340 layers: its head and input pipeline are resnet50's (applications.py)
@pytest.mark.parametrize("name", [name for name in EXPECTED_STAGES if name != "resnet101"])
def test_logits_shape_and_float32_under_mixed_precision(name):
    assert tiny(name, 10).output_shape == (None, 10)
    model = tiny(name, 100, "mixed_bfloat16")
    assert model.output_shape == (None, 100)
    logits = model(IMAGES, training=False)
    assert logits.dtype == "float32" and logits.shape == (2, 100)
    assert np.isfinite(np.asarray(logits)).all()


def check_taps(name, model):
    channels, strides = EXPECTED_STAGES[name]
    tapped = architectures.get(name).stage_model(model, ["stage1", "stage2", "stage3", "stage4"])
    logits, *features = tapped(IMAGES, training=False)
    np.testing.assert_allclose(logits, model(IMAGES, training=False), rtol=1e-5, atol=1e-5)
    assert [tuple(f.shape) for f in features] == [(2, 32 // s, 32 // s, c) for c, s in zip(channels, strides)]
    one = architectures.get(name).stage_model(model, ["stage3"])
    assert len(one.outputs) == 2 and tuple(one.outputs[1].shape[1:]) == (32 // strides[2],) * 2 + (channels[2],)


@pytest.mark.parametrize("name", EXPECTED_STAGES)
def test_save_load_round_trip_and_stage_taps(name, tmp_path):
    model = tiny(name)
    assert model.output_shape == (None, 10)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(loaded(IMAGES, training=False), model(IMAGES, training=False))
    check_taps(name, loaded)  # on the loaded model: a saved teacher is tapped after loading (online features)
    with pytest.raises(KdbenchError, match="unknown stage.*stage9"):
        architectures.get(name).stage_model(model, ["stage9"])


@pytest.mark.parametrize("name", KERAS_PREPROCESS)
def test_preprocessing_and_teacher_features(name):
    """The backbone sees the image through its keras.applications preprocess_input; a teacher's features_model
    gives the backbone's pooled output, on which its head gives the teacher's logits."""
    model = tiny(name)
    backbone = model.get_layer("backbone")
    expected = backbone(getattr(keras.applications, KERAS_PREPROCESS[name]).preprocess_input(IMAGES.copy()),
                        training=False)
    head = model.get_layer("head" if name in TEACHERS else "logits")
    np.testing.assert_allclose(head(expected, training=False), model(IMAGES, training=False), rtol=1e-4, atol=1e-4)
    if name in TEACHERS:
        features = architectures.get(name).features_model(model)(IMAGES, training=False)
        assert tuple(features.shape) == (2, backbone.output_shape[-1])
        np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-5)
        assert not backbone.trainable and head.trainable


@pytest.mark.parametrize("name, file_name", [
    ("resnet50", "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    ("resnet101", "resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    ("efficientnetb0", "efficientnetb0_notop.h5"),
])
def test_weights_errors_name_the_backbones_keras_file(name, file_name, tmp_path, monkeypatch):
    with pytest.raises(KdbenchError, match=f"not a file.*{file_name}"):
        architectures.build(name, 10, 1, weights=str(tmp_path / "missing.h5"))
    assert architectures.get(name).SPEC.notop_weights_file == file_name
    if name == "efficientnetb0":  # Keras adds ImageNet's input scaling only for weights="imagenet"
        (tmp_path / file_name).write_bytes(b"")
        with pytest.raises(KdbenchError, match=f"copy {file_name} to .* weights: imagenet"):
            architectures.build(name, 10, 1, weights=str(tmp_path / file_name))
        # offline: Keras asks for the file under its own name (EfficientNet derives it from the model's name)
        from keras.src.utils import file_utils

        asked = []

        def offline(fname, *args, **kwargs):
            asked.append(fname)
            raise OSError("no network")

        monkeypatch.setattr(file_utils, "get_file", offline)
        monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
        cache = re.escape(str(tmp_path / "keras" / "models" / file_name))
        with pytest.raises(KdbenchError, match=rf"Offline\? Copy {re.escape(file_name)} to {cache};"):
            architectures.build(name, 10, 1, weights="imagenet")
        assert asked == [file_name]


def test_resnet18_cifar_is_cifar_native_and_cheaper_than_the_reference_resnet18():
    from kdbench.cost import flops_per_image

    model = tiny("resnet18-cifar")
    assert not [layer for layer in model.layers if isinstance(layer, keras.layers.MaxPooling2D)]
    assert not [layer for layer in model.layers if layer.name.startswith("upsample_")]
    stem = model.get_layer("stem_conv")
    assert stem.kernel_size == (3, 3) and stem.strides == (1, 1)
    assert tuple(model.get_layer(architectures.get("resnet18-cifar").STAGES["stage1"]).output.shape[1:3]) == (32, 32)
    # the 0.56 vs 2.4 are multiply-adds; flops_per_image counts each as 2 FLOPs
    cifar = flops_per_image(model)
    reference = flops_per_image(architectures.build("resnet18", 10, 8))
    assert 0.9e9 < cifar < 1.4e9 and 4.0e9 < reference < 5.5e9
    assert 3.5 < reference / cifar < 5.5
