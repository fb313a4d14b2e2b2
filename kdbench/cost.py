"""What a model costs to run: FLOPs per image (TensorFlow's profiler), latency and throughput."""

from __future__ import annotations

import time

import numpy as np
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2_as_graph

from kdbench.architectures.layers import IMAGE_SHAPE


def flops_per_image(model) -> int:
    """Floating-point operations of one inference (a multiply-add counts 2), as TensorFlow's profiler counts them."""
    function = tf.function(lambda x: model(x, training=False))
    concrete = function.get_concrete_function(tf.TensorSpec([1, *IMAGE_SHAPE], tf.float32))
    _, graph_def = convert_variables_to_constants_v2_as_graph(concrete)
    with tf.Graph().as_default() as graph:
        tf.graph_util.import_graph_def(graph_def, name="")
        options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
        options["output"] = "none"
        profile = tf.compat.v1.profiler.profile(graph=graph, run_meta=tf.compat.v1.RunMetadata(), cmd="op",
                                                options=options)
    return int(profile.total_float_ops)


def _median_seconds(function, x, repeats: int) -> float:
    function(x)  # trace and warm up outside the measurement
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function(x).numpy()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def speed(model, throughput_batch: int, latency_repeats: int = 20, throughput_repeats: int = 3) -> dict:
    """Median latency at batch 1 (ms) and throughput at a large batch (images/s) on the current device."""
    function = tf.function(lambda x: model(x, training=False))
    rng = np.random.default_rng(0)
    one = rng.normal(0, 50, (1, *IMAGE_SHAPE)).astype(np.float32)
    many = rng.normal(0, 50, (throughput_batch, *IMAGE_SHAPE)).astype(np.float32)
    latency = _median_seconds(function, one, latency_repeats)
    batch_seconds = _median_seconds(function, many, throughput_repeats)
    return {"latency_ms": 1000 * latency, "throughput_images_per_s": throughput_batch / batch_seconds,
            "throughput_batch": throughput_batch}


def weights_size_mb(model) -> float:
    """Megabytes of the model's weights: what its weights file holds, without any optimizer state.

    Measured from the variables, not a saved file: Keras writes a compiled (sub)model's optimizer slots
    into the file too, which would triple the size of whichever models happen to be compiled.
    """
    return sum(int(np.prod(w.shape)) * np.dtype(w.dtype).itemsize for w in model.weights) / 2 ** 20


def model_cost(model, throughput_batch: int) -> dict:
    """Parameters, weights size on disk, FLOPs per image, latency and throughput."""
    return {"params": int(model.count_params()), "size_mb": weights_size_mb(model),
            "flops_per_image": flops_per_image(model), **speed(model, throughput_batch)}
