import keras
import numpy as np

from kdbench import cost, models


def tiny_dense_model():
    inputs = keras.Input(models.IMAGE_SHAPE)
    return keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(inputs)))


def test_flops_of_a_dense_layer():
    # one 3072 x 10 matrix multiply (a multiply-add counts 2) plus 10 bias additions
    assert cost.flops_per_image(tiny_dense_model()) in range(2 * 3072 * 10, 2 * 3072 * 10 + 11)


def test_resnet18_flops_are_dominated_by_its_convolutions():
    model = models.build_resnet18(1)
    conv_flops = sum(2 * np.prod(layer.output.shape[1:]) * np.prod(layer.kernel.shape[:3])
                     for layer in model.layers if isinstance(layer, keras.layers.Conv2D))
    flops = cost.flops_per_image(model)
    assert conv_flops <= flops <= 1.05 * conv_flops


def test_weights_size_excludes_optimizer_state():
    model = tiny_dense_model()
    before = cost.weights_size_mb(model)
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.zeros((2, *models.IMAGE_SHAPE)), np.zeros((2, 10)), verbose=0)  # creates Adam's slots
    assert cost.weights_size_mb(model) == before
    assert 3072 * 10 * 4 / 2 ** 20 < before < 3 * 3072 * 10 * 4 / 2 ** 20


def test_speed_reports_latency_and_throughput():
    result = cost.speed(tiny_dense_model(), throughput_batch=16, latency_repeats=3, throughput_repeats=2)
    assert result["latency_ms"] > 0 and result["throughput_images_per_s"] > 0 and result["throughput_batch"] == 16


def test_weights_size_excludes_optimizer_state_of_a_nested_model():
    inner = tiny_dense_model()
    outer = keras.Model(inner.inputs, inner(inner.inputs))
    before = cost.weights_size_mb(outer)
    inner.compile(optimizer="adam", loss="mse")  # as the frozen teacher's head is trained on its own
    inner.fit(np.zeros((2, *models.IMAGE_SHAPE)), np.zeros((2, 10)), verbose=0)
    assert cost.weights_size_mb(outer) == before
