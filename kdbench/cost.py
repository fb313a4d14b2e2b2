"""What a model costs to run: multiply-adds and FLOPs per image (counted from its layers), latency and throughput.

The count is analytic: it walks the model's layers (nested models included) with their output shapes and
runs nothing on the backend, so it is the same figure on TensorFlow, JAX and PyTorch. What counts, per image:
- MACs (multiply-accumulates) of Conv1D/2D/3D (groups included), DepthwiseConv, SeparableConv and Dense;
- FLOPs: 2 per MAC, plus 1 per output of a bias add, 2 per element of BatchNormalization (inference: one scale
  and one shift per element), n - 1 per output element of a merge of n tensors (Add, Multiply, ...), the window
  size per output of a pooling layer (the whole map for global pooling), 1 or 2 per element of the scaling
  layers (Rescaling, Normalization, kdbench's preprocessing; 3 for Standardize);
- nothing for activations, padding, resizing, reshapes, concatenation or dropout.
This follows TensorFlow's profiler (which counts no activations either); tests check the two agree within
1 % where TensorFlow is installed (`profiler_flops`), and the MACs against published ResNet counts. The
profiler also counts BatchNorm's per-channel arithmetic (the variance's rsqrt and the like, ~3 per channel),
which does not grow with the images: left out here, it puts the count up to 1 % under the profiler's (0.8 %
for MobileNetV2, whose maps are small). A layer with weights that none of these rules knows is refused rather
than counted as free.
FLOPs depend only on the architecture and the input size, so they may be kept in a cache shared by every run of
that architecture; latency and throughput are timed within a budget of seconds, so that evaluating a tiny model
takes seconds and a large one a bounded number of passes.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path

import numpy as np

from kdbench import KdbenchError
from kdbench.io import atomic_path

CIFAR_IMAGE_SHAPE = (32, 32, 3)
# Keys of a model's JSON that change no operation of its forward pass.
_NOT_ARCHITECTURE = {"trainable", "compile_config"}


def input_shape(model) -> tuple[int, ...]:
    """One image's shape as the model takes it (CIFAR's 32x32x3 where the model declares none)."""
    try:
        shape = tuple(model.inputs[0].shape[1:])
    except (AttributeError, IndexError, TypeError, ValueError):
        return CIFAR_IMAGE_SHAPE
    return shape if shape and all(isinstance(n, int) for n in shape) else CIFAR_IMAGE_SHAPE


def _architecture(value):
    """The model's JSON without what does not change its forward pass (trainable flags, compile settings)."""
    if isinstance(value, dict):
        return {key: _architecture(item) for key, item in value.items() if key not in _NOT_ARCHITECTURE}
    if isinstance(value, list):
        return [_architecture(item) for item in value]
    return value


def _collect_layer_names(value, names: dict[str, str]) -> None:
    """Number every layer name in the order the JSON lists them, nested models included."""
    if isinstance(value, dict):
        for layer in value.get("layers", []) if isinstance(value.get("layers"), list) else []:
            name = layer.get("name") or layer.get("config", {}).get("name") if isinstance(layer, dict) else None
            if isinstance(name, str):
                names.setdefault(name, f"layer-{len(names)}")
        for item in value.values():
            _collect_layer_names(item, names)
    elif isinstance(value, list):
        for item in value:
            _collect_layer_names(item, names)


def _renamed(value, names: dict[str, str]):
    if isinstance(value, dict):
        return {key: _renamed(item, names) for key, item in value.items()}
    if isinstance(value, list):
        return [_renamed(item, names) for item in value]
    return names.get(value, value) if isinstance(value, str) else value


def architecture_key(model) -> str:
    """Hash of the model's architecture and input shape. Names (the model's, and layer names Keras numbers
    per process, e.g. `input_layer_3`) and trainable flags are left out, so every run of one architecture
    at one input size (a student of any seed or method, a frozen or fine-tuned teacher) shares its count."""
    description = json.loads(model.to_json())
    description.get("config", {}).pop("name", None)
    description.pop("name", None)
    names: dict[str, str] = {}
    _collect_layer_names(description, names)
    text = json.dumps({"model": _renamed(_architecture(description), names),
                       "input_shape": list(input_shape(model))}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _shape(tensor) -> tuple[int, ...]:
    """One image's shape of a symbolic tensor (batch left out), every dimension known."""
    shape = tuple(tensor.shape[1:])
    if not all(isinstance(n, int) for n in shape):
        raise KdbenchError(f"cannot count FLOPs: a tensor of shape {tuple(tensor.shape)} has unknown dimensions "
                           "(give the model a fixed input shape)")
    return shape


def _layer_count(layer, inputs: list[tuple[int, ...]], output: tuple[int, ...]) -> tuple[int, int]:
    """(MACs, FLOPs other than the MACs' 2 each) of one call of a layer that holds no other layers."""
    import keras

    from kdbench.architectures.layers import CaffePreprocess, Standardize, TfPreprocess

    L = keras.layers  # noqa: N806
    outputs = math.prod(output)
    bias = outputs if getattr(layer, "use_bias", False) else 0
    if isinstance(layer, (L.Conv1D, L.Conv2D, L.Conv3D)):  # each output: kernel x (input channels / groups)
        return outputs * math.prod(layer.kernel_size) * (inputs[0][-1] // layer.groups), bias
    if isinstance(layer, (L.DepthwiseConv1D, L.DepthwiseConv2D)):  # each output: one kernel over one channel
        return outputs * math.prod(layer.kernel_size), bias
    if isinstance(layer, (L.SeparableConv1D, L.SeparableConv2D)):  # depthwise, then a 1x1 conv
        positions, depthwise_channels = outputs // output[-1], inputs[0][-1] * layer.depth_multiplier
        return positions * depthwise_channels * (math.prod(layer.kernel_size) + output[-1]), bias
    if isinstance(layer, L.Dense):
        return outputs * inputs[0][-1], bias
    if isinstance(layer, (L.BatchNormalization, L.Normalization, L.Rescaling, TfPreprocess)):
        return 0, 2 * outputs  # one scale and one shift per element
    if isinstance(layer, Standardize):
        return 0, 3 * outputs  # (x / 255 - mean) / std
    if isinstance(layer, CaffePreprocess):
        return 0, outputs  # the channel flip is free, the mean subtraction one op per element
    if isinstance(layer, (L.Add, L.Subtract, L.Multiply, L.Average, L.Maximum, L.Minimum)):
        return 0, (len(inputs) - 1) * outputs
    if isinstance(layer, (L.MaxPooling1D, L.MaxPooling2D, L.MaxPooling3D,
                          L.AveragePooling1D, L.AveragePooling2D, L.AveragePooling3D)):
        return 0, outputs * math.prod(layer.pool_size)
    if isinstance(layer, (L.GlobalAveragePooling1D, L.GlobalAveragePooling2D, L.GlobalAveragePooling3D,
                          L.GlobalMaxPooling1D, L.GlobalMaxPooling2D, L.GlobalMaxPooling3D)):
        return 0, math.prod(inputs[0])
    if layer.weights:
        raise KdbenchError(f"cannot count the FLOPs of layer '{layer.name}' ({type(layer).__name__}): it has "
                           "weights but kdbench.cost has no rule for it; add one to _layer_count")
    return 0, 0  # activations, padding, resizing, reshapes, concatenation, dropout


def _graph(model):
    """The functional graph of `model` (a Sequential's inner one), or None for a layer that is not a model."""
    graph = getattr(model, "_functional", None) or model
    return graph if hasattr(graph, "_nodes_by_depth") else None


def _count(model) -> tuple[int, int]:
    """(MACs, other FLOPs) of one pass through `model`'s graph: every call of every layer, nested models
    counted through their own graphs, shared layers once per call."""
    graph = _graph(model)
    if graph is None:
        raise KdbenchError(f"cannot count FLOPs of '{model.name}' ({type(model).__name__}): only functional "
                           "and Sequential models have the layer graph the count walks")
    macs = other = 0
    for nodes in graph._nodes_by_depth.values():
        for node in nodes:
            layer = node.operation
            if not node.input_tensors:  # an input layer
                continue
            if _graph(layer) is not None:
                inner = _count(layer)
            else:
                inner = _layer_count(layer, [_shape(t) for t in node.input_tensors], _shape(node.output_tensors[0]))
            macs, other = macs + inner[0], other + inner[1]
    return macs, other


def count_macs_and_flops(model) -> dict:
    """Multiply-accumulates and FLOPs of one inference on one image (a MAC counts 2 FLOPs; see the module's
    docstring for what else counts)."""
    macs, other = _count(model)
    return {"macs": int(macs), "flops": int(2 * macs + other)}


def count_flops(model) -> int:
    """FLOPs of one inference on one image, counted from the model's layers."""
    return count_macs_and_flops(model)["flops"]


def profiler_flops(model) -> int:
    """FLOPs of one inference as TensorFlow's profiler counts them in the traced graph (needs TensorFlow):
    the cross-check of the analytic count, which the evaluate step uses on every backend."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2_as_graph

    function = tf.function(lambda x: model(x, training=False))
    concrete = function.get_concrete_function(tf.TensorSpec([1, *input_shape(model)], tf.float32))
    _, graph_def = convert_variables_to_constants_v2_as_graph(concrete)
    with tf.Graph().as_default() as graph:
        tf.graph_util.import_graph_def(graph_def, name="")
        options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
        options["output"] = "none"
        profile = tf.compat.v1.profiler.profile(graph=graph, run_meta=tf.compat.v1.RunMetadata(), cmd="op",
                                                options=options)
    return int(profile.total_float_ops)


def macs_and_flops_per_image(model, cache_dir: str | Path | None = None) -> dict:
    """{"macs", "flops"} of one inference; with `cache_dir`, counted once per architecture and input size.

    Each count is its own small file (`macs-<key>.json`; the `flops-` files of the TensorFlow profiler's
    count, before, are not read), so parallel jobs never write the same file at once; an unreadable cache
    file is counted again and rewritten.
    """
    if cache_dir is None:
        return count_macs_and_flops(model)
    path = Path(cache_dir) / f"macs-{architecture_key(model)}.json"
    try:
        cached = json.loads(path.read_text())
        return {"macs": int(cached["macs_per_image"]), "flops": int(cached["flops_per_image"])}
    except (OSError, ValueError, KeyError, TypeError):
        pass
    counts = count_macs_and_flops(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps({"macs_per_image": counts["macs"], "flops_per_image": counts["flops"],
                                         "input_shape": list(input_shape(model)), "model": model.name}) + "\n")
    return counts


def flops_per_image(model, cache_dir: str | Path | None = None) -> int:
    """FLOPs of one inference (a multiply-add counts 2); with `cache_dir`, counted once per architecture."""
    return macs_and_flops_per_image(model, cache_dir)["flops"]


def _median_seconds(function, x, max_repeats: int, budget_seconds: float) -> tuple[float, int]:
    """Median time of `function(x)` over up to `max_repeats` calls, stopping once `budget_seconds` are spent
    (at least one call is timed); returns it with the number of calls timed. `function` returns NumPy
    arrays, so each call has finished on the device when it returns."""
    function(x)  # trace or compile, and warm up, outside the measurement
    times = []
    start = time.perf_counter()
    while len(times) < max(1, max_repeats):
        before = time.perf_counter()
        function(x)
        times.append(time.perf_counter() - before)
        if time.perf_counter() - start >= budget_seconds:
            break
    return float(np.median(times)), len(times)


def speed(model, throughput_batch: int, latency_repeats: int = 20, throughput_repeats: int = 3,
          budget_seconds: float = 1.0) -> dict:
    """Median latency at batch 1 (ms) and throughput at a large batch (images/s) on the current device.

    Each of the two timings stops after its repeats or after `budget_seconds`, whichever comes first
    (plus one untimed warm-up call per batch size): a small model gets its 20 latency calls in a fraction of a
    second, a ResNet50 at 256 px on a CPU is timed once or twice instead of for minutes. The model runs as
    Keras's predict_on_batch runs it (inference mode, the backend's compiled predict step, NumPy out), so the
    timing means the same on every backend.
    """
    shape = input_shape(model)
    rng = np.random.default_rng(0)
    one = rng.normal(0, 50, (1, *shape)).astype(np.float32)
    many = rng.normal(0, 50, (throughput_batch, *shape)).astype(np.float32)
    latency, latency_calls = _median_seconds(model.predict_on_batch, one, latency_repeats, budget_seconds)
    batch_seconds, throughput_calls = _median_seconds(model.predict_on_batch, many, throughput_repeats,
                                                      budget_seconds)
    return {"latency_ms": 1000 * latency, "throughput_images_per_s": throughput_batch / batch_seconds,
            "throughput_batch": throughput_batch, "latency_calls": latency_calls,
            "throughput_calls": throughput_calls}


def weights_size_mb(model) -> float:
    """Megabytes of the model's weights: what its weights file holds, without any optimizer state.

    Measured from the variables, not a saved file: Keras writes a compiled (sub)model's optimizer slots
    into the file too, which would triple the size of whichever models happen to be compiled.
    """
    return sum(int(np.prod(w.shape)) * np.dtype(w.dtype).itemsize for w in model.weights) / 2 ** 20


def model_cost(model, throughput_batch: int, cache_dir: str | Path | None = None,
               budget_seconds: float = 1.0) -> dict:
    """Parameters, weights size, MACs and FLOPs per image (cached per architecture in `cache_dir`), latency and
    throughput."""
    counts = macs_and_flops_per_image(model, cache_dir)
    return {"params": int(model.count_params()), "size_mb": weights_size_mb(model),
            "macs_per_image": counts["macs"], "flops_per_image": counts["flops"],
            **speed(model, throughput_batch, budget_seconds=budget_seconds)}
