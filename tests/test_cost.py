import json

import keras
import numpy as np
import pytest

from kdbench import KdbenchError, architectures, cost
from kdbench.architectures.layers import IMAGE_SHAPE


def tiny_dense_model():
    inputs = keras.Input(IMAGE_SHAPE)
    return keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(inputs)))


def test_flops_of_a_dense_layer():
    # one 3072 x 10 matrix multiply (a multiply-add counts 2) plus 10 bias additions
    assert cost.count_macs_and_flops(tiny_dense_model()) == {"macs": 3072 * 10, "flops": 2 * 3072 * 10 + 10}


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
    assert cost.count_macs_and_flops(conv_dense_model())["macs"] == (30 * 30 * 4) * 27 + (30 * 30 * 4) * 10


def test_flops_are_counted_once_per_architecture_and_input_size(tmp_path, monkeypatch):
    counted = []

    def count(model):
        counted.append(model.name)
        return {"macs": 500 + len(counted), "flops": 1000 + len(counted)}

    monkeypatch.setattr(cost, "count_macs_and_flops", count)
    first = cost.flops_per_image(conv_dense_model(name="student-a"), cache_dir=tmp_path)
    # another run of the same architecture: another name, frozen, compiled
    again = conv_dense_model(name="student-b", trainable=False)
    again.compile(optimizer="adam", loss="mse")
    assert cost.macs_and_flops_per_image(again, cache_dir=tmp_path) == {"macs": 501, "flops": 1001}
    assert first == 1001 and counted == ["student-a"]
    cost.flops_per_image(conv_dense_model((64, 64, 3)), cache_dir=tmp_path)  # another input size: counted
    assert len(counted) == 2 and len(list(tmp_path.glob("macs-*.json"))) == 2


def test_a_damaged_flops_cache_file_is_counted_again(tmp_path):
    model = conv_dense_model()
    path = tmp_path / f"macs-{cost.architecture_key(model)}.json"
    path.write_text("{not json")
    assert cost.macs_and_flops_per_image(model, cache_dir=tmp_path) == cost.count_macs_and_flops(model)
    written = json.loads(path.read_text())
    assert (written["macs_per_image"], written["flops_per_image"]) == (30 * 30 * 4 * 27 + 3600 * 10,
                                                                       cost.count_flops(model))


def test_model_cost_reads_macs_and_flops_from_the_cache(tmp_path, monkeypatch):
    model = tiny_dense_model()
    first = cost.model_cost(model, throughput_batch=4, cache_dir=tmp_path)
    assert first["macs_per_image"] == 3072 * 10 and first["flops_per_image"] == 2 * 3072 * 10 + 10
    monkeypatch.setattr(cost, "count_macs_and_flops", lambda model: pytest.fail("FLOPs counted again"))
    again = cost.model_cost(model, throughput_batch=4, cache_dir=tmp_path)
    assert (again["macs_per_image"], again["flops_per_image"]) == (first["macs_per_image"], first["flops_per_image"])


def test_speed_stops_at_its_time_budget():
    result = cost.speed(tiny_dense_model(), throughput_batch=4, latency_repeats=50, throughput_repeats=50,
                        budget_seconds=0.0)
    assert result["latency_calls"] == result["throughput_calls"] == 1  # one timed call each, after a warm-up
    result = cost.speed(tiny_dense_model(), throughput_batch=4, latency_repeats=5, throughput_repeats=2,
                        budget_seconds=60.0)
    assert (result["latency_calls"], result["throughput_calls"]) == (5, 2)


def test_every_layer_kind_is_counted_as_written_out_by_hand():
    layers = keras.layers
    inputs = keras.Input((8, 8, 4))
    grouped = layers.Conv2D(8, 3, padding="same", groups=2, use_bias=False)(inputs)  # 8x8x8, 3x3x2 each
    depthwise = layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2)(grouped)  # 8x8x16, 3x3 each
    separable = layers.SeparableConv2D(6, 3, padding="same", use_bias=False)(depthwise)  # 9 + 16 per position
    normed = layers.BatchNormalization()(separable)
    pooled = layers.MaxPooling2D(2)(layers.ReLU()(normed))  # 4x4x6, 2x2 windows
    summed = layers.Add()([pooled, pooled, pooled])
    logits = layers.Dense(3)(layers.GlobalAveragePooling2D()(summed))
    macs = 64 * 8 * 18 + 64 * 16 * 9 + 64 * 16 * (9 + 6) + 6 * 3
    other = (64 * 16  # the depthwise bias
             + 2 * 64 * 6  # BatchNorm: a scale and a shift per element
             + 16 * 6 * 4  # max-pooling: 4 per output
             + 2 * 16 * 6  # a sum of three: 2 per output
             + 16 * 6  # global average pooling reads every element once
             + 3)  # the Dense bias
    assert cost.count_macs_and_flops(keras.Model(inputs, logits)) == {"macs": macs, "flops": 2 * macs + other}


def test_nested_models_and_shared_layers_count_once_per_call():
    inner = conv_dense_model(name="inner")
    one = cost.count_macs_and_flops(inner)
    inputs = keras.Input((32, 32, 3))
    twice = keras.Model(inputs, keras.layers.Add()([inner(inputs), inner(inputs)]))
    assert cost.count_macs_and_flops(twice) == {"macs": 2 * one["macs"], "flops": 2 * one["flops"] + 10}
    sequential = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(4, 3, name="conv"),
                                   keras.layers.Flatten(), keras.layers.Dense(10)])
    assert cost.count_macs_and_flops(sequential) == one


class Scaled(keras.layers.Layer):
    """A layer kdbench.cost has no rule for, with a weight."""

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(input_shape[-1],), initializer="ones")

    def call(self, x):
        return x * self.scale


class Doubled(keras.layers.Layer):
    """A layer kdbench.cost has no rule for, without weights."""

    def call(self, x):
        return 2 * x


def test_an_unknown_layer_with_weights_is_refused_and_one_without_is_free():
    inputs = keras.Input((4,))
    with pytest.raises(KdbenchError, match=r"layer 'mystery' \(Scaled\): it has weights .*_layer_count"):
        cost.count_flops(keras.Model(inputs, Scaled(name="mystery")(inputs)))
    assert cost.count_macs_and_flops(keras.Model(inputs, keras.layers.Dense(2)(Doubled()(inputs)))) == \
        {"macs": 8, "flops": 18}


def zoo_names():
    wanted = ["resnet18-cifar", "mobilenetv2", "resnet20", "wrn_16_1"]
    return [name if name in architectures.ARCHITECTURES
            else pytest.param(name, marks=pytest.mark.skip(reason=f"{name} is not registered")) for name in wanted]


@pytest.mark.parametrize("name", zoo_names())
def test_the_count_agrees_with_tensorflows_profiler(name):
    pytest.importorskip("tensorflow")
    model = architectures.build(name, 10, 1)  # mobilenetv2: keras.applications' at 64 px, nested
    analytic, profiled = cost.count_flops(model), cost.profiler_flops(model)
    assert 0.99 * profiled <= analytic <= profiled  # what it leaves out: BatchNorm's per-channel arithmetic


def resnet18_at_224():
    """The project's resnet18 (its stem and stages) at ImageNet's 224 px with 1,000 classes."""
    from kdbench.architectures import resnet18

    layers = keras.layers
    inputs = keras.Input((224, 224, 3))
    x = layers.Conv2D(64, 7, strides=2, padding="same", name="stem_conv")(inputs)
    x = layers.ReLU()(layers.BatchNormalization()(x))
    x = layers.MaxPool2D(2, strides=2, padding="same")(x)  # the reference's 2x2 pool: no MACs either way
    return resnet18.stages_and_head(inputs, x, 1000, "resnet18")


def resnet50_v1_5():
    """ResNet-50 v1.5 (torchvision's: the stride on the bottleneck's 3x3 conv) at 224 px, 1,000 classes."""
    layers = keras.layers
    inputs = keras.Input((224, 224, 3))
    x = layers.MaxPool2D(3, strides=2, padding="same")(layers.Conv2D(64, 7, strides=2, padding="same")(inputs))
    for stage, (width, blocks) in enumerate([(64, 3), (128, 4), (256, 6), (512, 3)]):
        for block in range(blocks):
            stride = 2 if stage > 0 and block == 0 else 1
            y = layers.Conv2D(width, 1)(x)
            y = layers.Conv2D(width, 3, strides=stride, padding="same")(y)
            y = layers.Conv2D(4 * width, 1)(y)
            shortcut = layers.Conv2D(4 * width, 1, strides=stride)(x) if block == 0 else x
            x = layers.Add()([y, shortcut])
    return keras.Model(inputs, layers.Dense(1000)(layers.GlobalAveragePooling2D()(x)))


def test_macs_match_the_published_resnet_counts():
    # torchvision's model table: ResNet-18 1.81 and ResNet-50 (v1.5) 4.09 "GFLOPS", which are multiply-adds
    assert cost.count_macs_and_flops(resnet18_at_224())["macs"] == pytest.approx(1.82e9, rel=0.01)
    assert cost.count_macs_and_flops(resnet50_v1_5())["macs"] == pytest.approx(4.1e9, rel=0.01)
    # Keras's ResNet50 is v1 (the stride on the first 1x1 conv): He et al.'s 3.8 x 10^9 multiply-adds
    macs = cost.count_macs_and_flops(keras.applications.ResNet50(weights=None))["macs"]
    assert 3.8e9 <= macs <= 3.9e9
