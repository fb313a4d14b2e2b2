"""What a model costs to run: FLOPs per image (TensorFlow's profiler), latency and throughput.

FLOPs depend only on the architecture and the input size, so they are counted once and kept in a cache
shared by every run of that architecture; latency and throughput are timed within a budget of seconds,
so that evaluating a tiny model takes seconds and a large one a bounded number of passes.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2_as_graph

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


def count_flops(model) -> int:
    """Floating-point operations of one inference (a multiply-add counts 2), as TensorFlow's profiler counts them."""
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


def flops_per_image(model, cache_dir: str | Path | None = None) -> int:
    """FLOPs of one inference; with `cache_dir`, counted once per architecture and input size.

    Each count is its own small file (`flops-<key>.json`), so parallel jobs never write the same file
    at once; an unreadable cache file is counted again and rewritten.
    """
    if cache_dir is None:
        return count_flops(model)
    path = Path(cache_dir) / f"flops-{architecture_key(model)}.json"
    try:
        return int(json.loads(path.read_text())["flops_per_image"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    flops = count_flops(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps({"flops_per_image": flops, "input_shape": list(input_shape(model)),
                                         "model": model.name}) + "\n")
    return flops


def _median_seconds(function, x, max_repeats: int, budget_seconds: float) -> tuple[float, int]:
    """Median time of `function(x)` over up to `max_repeats` calls, stopping once `budget_seconds` are spent
    (at least one call is timed); returns it with the number of calls timed."""
    function(x).numpy()  # trace and warm up outside the measurement
    times = []
    start = time.perf_counter()
    while len(times) < max(1, max_repeats):
        before = time.perf_counter()
        function(x).numpy()
        times.append(time.perf_counter() - before)
        if time.perf_counter() - start >= budget_seconds:
            break
    return float(np.median(times)), len(times)


def speed(model, throughput_batch: int, latency_repeats: int = 20, throughput_repeats: int = 3,
          budget_seconds: float = 1.0) -> dict:
    """Median latency at batch 1 (ms) and throughput at a large batch (images/s) on the current device.

    Each of the two timings stops after its repeats or after `budget_seconds`, whichever comes first
    (plus one untimed warm-up call): a small model gets its 20 latency calls in a fraction of a second,
    a ResNet50 at 256 px on a CPU is timed once or twice instead of for minutes.
    """
    shape = input_shape(model)
    # one trace serves both batch sizes (tracing a ResNet50 takes seconds)
    function = tf.function(lambda x: model(x, training=False),
                           input_signature=[tf.TensorSpec([None, *shape], tf.float32)])
    rng = np.random.default_rng(0)
    one = rng.normal(0, 50, (1, *shape)).astype(np.float32)
    many = rng.normal(0, 50, (throughput_batch, *shape)).astype(np.float32)
    latency, latency_calls = _median_seconds(function, one, latency_repeats, budget_seconds)
    batch_seconds, throughput_calls = _median_seconds(function, many, throughput_repeats, budget_seconds)
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
    """Parameters, weights size, FLOPs per image (cached per architecture in `cache_dir`), latency and throughput."""
    return {"params": int(model.count_params()), "size_mb": weights_size_mb(model),
            "flops_per_image": flops_per_image(model, cache_dir),
            **speed(model, throughput_batch, budget_seconds=budget_seconds)}
