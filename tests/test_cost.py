import json

import keras
import numpy as np
import pytest

from kdbench import architectures, cost
from kdbench.architectures.layers import IMAGE_SHAPE


def tiny_dense_model():
    inputs = keras.Input(IMAGE_SHAPE)
    return keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(inputs)))


def test_flops_of_a_dense_layer():
    # one 3072 x 10 matrix multiply (a multiply-add counts 2) plus 10 bias additions
    assert cost.flops_per_image(tiny_dense_model()) in range(2 * 3072 * 10, 2 * 3072 * 10 + 11)


def test_resnet18_flops_are_dominated_by_its_convolutions():
    model = architectures.build("resnet18", 10, 1)
    conv_flops = sum(2 * np.prod(layer.output.shape[1:]) * np.prod(layer.kernel.shape[:3])
                     for layer in model.layers if isinstance(layer, keras.layers.Conv2D))
    flops = cost.flops_per_image(model)
    assert conv_flops <= flops <= 1.05 * conv_flops


def test_weights_size_excludes_optimizer_state():
    model = tiny_dense_model()
    before = cost.weights_size_mb(model)
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.zeros((2, *IMAGE_SHAPE)), np.zeros((2, 10)), verbose=0)  # creates Adam's slots
    assert cost.weights_size_mb(model) == before
    assert 3072 * 10 * 4 / 2 ** 20 < before < 3 * 3072 * 10 * 4 / 2 ** 20


def test_speed_reports_latency_and_throughput():
    result = cost.speed(tiny_dense_model(), throughput_batch=16, latency_repeats=3, throughput_repeats=2)
    assert result["latency_ms"] > 0 and result["throughput_images_per_s"] > 0 and result["throughput_batch"] == 16
    assert 1 <= result["latency_calls"] <= 3 and 1 <= result["throughput_calls"] <= 2


def test_weights_size_excludes_optimizer_state_of_a_nested_model():
    inner = tiny_dense_model()
    outer = keras.Model(inner.inputs, inner(inner.inputs))
    before = cost.weights_size_mb(outer)
    inner.compile(optimizer="adam", loss="mse")  # as the frozen teacher's head is trained on its own
    inner.fit(np.zeros((2, *IMAGE_SHAPE)), np.zeros((2, 10)), verbose=0)
    assert cost.weights_size_mb(outer) == before


def conv_dense_model(shape=(32, 32, 3), name=None, trainable=True):
    inputs = keras.Input(shape)
    features = keras.layers.Conv2D(4, 3, name="conv")(inputs)  # 'valid': 30 x 30 x 4 outputs of 3 x 3 x 3
    model = keras.Model(inputs, keras.layers.Dense(10, name="dense")(keras.layers.Flatten(name="flat")(features)),
                        name=name)
    model.trainable = trainable
    return model


def test_flops_of_a_conv_and_dense_model_equal_the_hand_count():
    conv = 2 * (30 * 30 * 4) * (3 * 3 * 3) + 30 * 30 * 4  # multiply-adds count 2, plus one bias add per output
    dense = 2 * (30 * 30 * 4) * 10 + 10
    assert cost.flops_per_image(conv_dense_model()) == conv + dense


def test_flops_are_counted_once_per_architecture_and_input_size(tmp_path, monkeypatch):
    counted = []
    monkeypatch.setattr(cost, "count_flops", lambda model: counted.append(model.name) or 1000 + len(counted))
    first = cost.flops_per_image(conv_dense_model(name="student-a"), cache_dir=tmp_path)
    # another run of the same architecture: another name, frozen, compiled
    again = conv_dense_model(name="student-b", trainable=False)
    again.compile(optimizer="adam", loss="mse")
    assert cost.flops_per_image(again, cache_dir=tmp_path) == first == 1001
    assert counted == ["student-a"]
    cost.flops_per_image(conv_dense_model((64, 64, 3)), cache_dir=tmp_path)  # another input size: counted
    assert len(counted) == 2 and len(list(tmp_path.glob("flops-*.json"))) == 2


def test_a_damaged_flops_cache_file_is_counted_again(tmp_path):
    model = conv_dense_model()
    path = tmp_path / f"flops-{cost.architecture_key(model)}.json"
    path.write_text("{not json")
    assert cost.flops_per_image(model, cache_dir=tmp_path) == cost.count_flops(model)
    assert json.loads(path.read_text())["flops_per_image"] == cost.count_flops(model)


def test_model_cost_reads_flops_from_the_cache(tmp_path, monkeypatch):
    model = tiny_dense_model()
    first = cost.model_cost(model, throughput_batch=4, cache_dir=tmp_path)
    monkeypatch.setattr(cost, "count_flops", lambda model: pytest.fail("FLOPs counted again"))
    assert cost.model_cost(model, throughput_batch=4, cache_dir=tmp_path)["flops_per_image"] == first["flops_per_image"]


def test_speed_stops_at_its_time_budget():
    result = cost.speed(tiny_dense_model(), throughput_batch=4, latency_repeats=50, throughput_repeats=50,
                        budget_seconds=0.0)
    assert result["latency_calls"] == result["throughput_calls"] == 1  # one timed call each, after a warm-up
    result = cost.speed(tiny_dense_model(), throughput_batch=4, latency_repeats=5, throughput_repeats=2,
                        budget_seconds=60.0)
    assert (result["latency_calls"], result["throughput_calls"]) == (5, 2)
