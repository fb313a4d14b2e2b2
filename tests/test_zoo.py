"""The CIFAR model zoo of the CRD / DKD tables (issue 22), table-driven: every network's trainable parameter count
equals the reference implementation's for 100 and for 10 classes, its stage taps have the reference's shapes at
32 px, and the cheap ones train a step, save and reload to the same logits."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from kdbench import architectures


def _stages(*side_channels):
    return tuple(side_channels)


def _resnet(widths):
    return _stages((32, widths[0]), (16, widths[1]), (8, widths[2]))


def _wrn(k):
    return _stages((32, 16 * k), (16, 32 * k), (8, 64 * k))


VGG_STAGES = _stages((16, 128), (8, 256), (4, 512), (4, 512))

# name -> (trainable parameters at 100 classes, in_features of the final linear layer, stage taps as (side, channels)
# at 32 px). The counts are RepDistiller's models (models/resnet.py, wrn.py, vgg.py, mobilenetv2.py mobile_half,
# ShuffleNetv1.py, ShuffleNetv2.py) built with num_classes=100, the sum of p.numel() over model.parameters();
# BatchNorm's running statistics are buffers there and non-trainable weights here, counted by neither.
# Feature width per family: the CIFAR ResNets 64 (x4: 256), WRN-d-k 64k, the VGGs 512, MobileNetV2 1280 (its
# last 1x1 conv), ShuffleNetV1 960 (its last stage), ShuffleNetV2 1024 (its last 1x1 conv).
ZOO = {
    "resnet8": (83892, 64, _resnet((16, 32, 64))),
    "resnet14": (181108, 64, _resnet((16, 32, 64))),
    "resnet20": (278324, 64, _resnet((16, 32, 64))),
    "resnet32": (472756, 64, _resnet((16, 32, 64))),
    "resnet44": (667188, 64, _resnet((16, 32, 64))),
    "resnet56": (861620, 64, _resnet((16, 32, 64))),
    "resnet110": (1736564, 64, _resnet((16, 32, 64))),
    "resnet8x4": (1233540, 256, _resnet((64, 128, 256))),
    "resnet32x4": (7433860, 256, _resnet((64, 128, 256))),
    "wrn_16_1": (180916, 64, _wrn(1)),
    "wrn_16_2": (703284, 128, _wrn(2)),
    "wrn_40_1": (569780, 64, _wrn(1)),
    "wrn_40_2": (2255156, 128, _wrn(2)),
    "vgg8": (3965028, 512, VGG_STAGES),
    "vgg11": (9277284, 512, VGG_STAGES),
    "vgg13": (9462180, 512, VGG_STAGES),
    "mobilenetv2-cifar": (812836, 1280, _stages((16, 12), (8, 16), (4, 48), (2, 160))),
    "shufflenetv1": (949258, 960, _stages((16, 240), (8, 480), (4, 960))),
    "shufflenetv2": (1355528, 1024, _stages((16, 116), (8, 232), (4, 464))),
}


def params_for(name: str, num_classes: int) -> int:
    """The reference count for `num_classes`: the 100-class figure less the final linear layer's 100 - num_classes
    output units (in_features weights and a bias each)."""
    at_100, in_features, _ = ZOO[name]
    return at_100 - (100 - num_classes) * (in_features + 1)


_models: dict = {}


def zoo_model(name: str, num_classes: int):
    if (name, num_classes) not in _models:
        _models[name, num_classes] = architectures.build(name, num_classes, 1)
    return _models[name, num_classes]


def trainable_parameters(model) -> int:
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def test_ten_class_figures_by_hand():
    """params_for against 10-class counts worked out by hand: resnet20 less its two projection shortcuts
    (16 * 32 + 2 * 32 and 32 * 64 + 2 * 64) is 269,722, the option-A CIFAR-10 ResNet-20's well-known count;
    resnet8x4 at 10 classes drops 90 * 257 from 1,233,540."""
    assert params_for("resnet20", 10) - (16 * 32 + 2 * 32) - (32 * 64 + 2 * 64) == 269722
    assert params_for("resnet8x4", 10) == 1233540 - 90 * 257 == 1210410


def test_the_zoo_is_registered_native_32_px():
    assert set(ZOO) <= set(architectures.ARCHITECTURES)
    for name in ZOO:
        # native 32 px whatever model.upsample says, and not a keras.applications teacher (no backbone / head)
        assert architectures.upsample_for(name, 8) == 1, name
        assert not getattr(architectures.get(name), "TEACHER", False), name
        assert list(architectures.get(name).STAGES) == [f"stage{i}" for i in range(1, len(ZOO[name][2]) + 1)], name


@pytest.mark.parametrize("num_classes", [100, 10])
@pytest.mark.parametrize("name", ZOO)
def test_parameter_count_equals_the_reference(name, num_classes):
    model = zoo_model(name, num_classes)
    assert model.output_shape == (None, num_classes)
    assert model.get_layer("logits").input.shape[-1] == ZOO[name][1]  # the feature width the table states
    assert trainable_parameters(model) == params_for(name, num_classes)
    assert not [layer for layer in model.layers if layer.name.startswith("upsample_")]


@pytest.mark.parametrize("name", ZOO)
def test_stage_taps_have_the_reference_shapes(name):
    model = zoo_model(name, 10)
    module = architectures.get(name)
    tapped = module.stage_model(model, list(module.STAGES))
    assert tuple(tapped.outputs[0].shape) == (None, 10)
    assert [tuple(t.shape) for t in tapped.outputs[1:]] == [(None, s, s, c) for s, c in ZOO[name][2]]


@pytest.mark.parametrize("name", ZOO)
def test_one_training_step_then_save_and_reload_gives_the_same_logits(name, tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (4, 32, 32, 3)).astype("float32")
    labels = np.array([0, 1, 2, 3])
    keras.utils.set_random_seed(0)
    model = architectures.build(name, 10, 1, name="student")

    def logits_of(network):  # NumPy on every backend (a torch output holds its graph)
        return keras.ops.convert_to_numpy(network(images, training=False))

    before = logits_of(model)
    # eager: tracing a graph of shufflenetv2's few hundred layers costs more than the step itself
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), run_eagerly=True,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    loss = model.train_on_batch(images, labels)
    after = logits_of(model)
    assert np.isfinite(loss) and np.isfinite(after).all()
    assert not np.allclose(before, after)  # the step changed the weights (and BatchNorm's statistics)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = architectures.load_model(path)
    np.testing.assert_allclose(logits_of(loaded), after, rtol=1e-5, atol=1e-5)
    module = architectures.get(name)
    logits, *features = module.stage_model(loaded, list(module.STAGES))(images, training=False)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(logits), after, rtol=1e-5, atol=1e-5)
    assert [tuple(f.shape) for f in features] == [(4, s, s, c) for s, c in ZOO[name][2]]
