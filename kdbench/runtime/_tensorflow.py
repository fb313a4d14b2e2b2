"""The TensorFlow room: tf.data input, thread pools, op determinism, tf.distribute, device listing."""

from __future__ import annotations

import time

import keras
import numpy as np
import tensorflow as tf

from kdbench import augment
from kdbench.runtime import cpu_description


def configure(threads: int, seed: int, deterministic: bool) -> None:
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(min(threads, 2))
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def distribution_strategy(devices: list[str] | None = None) -> tf.distribute.Strategy:
    """Data-parallel training over every visible GPU; with one GPU or none, TensorFlow's default strategy.

    Build and compile models inside `strategy.scope()`. The global batch stays the configured batch size
    (split across the N replicas) and the learning rate is unchanged, so a run's hyperparameters do not
    depend on how many GPUs its job got. `devices` overrides the GPU list (tests mirror over CPUs).
    Call after configure (listing devices starts TensorFlow's runtime).
    """
    if devices is None:
        devices = [device.name for device in tf.config.list_logical_devices("GPU")]
    if len(devices) > 1:
        return tf.distribute.MirroredStrategy(devices)
    return tf.distribute.get_strategy()


def replicas_in_sync() -> int:
    return tf.distribute.get_strategy().num_replicas_in_sync


def device_description() -> str:
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        names = [tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus]
        return ", ".join(names)
    return cpu_description()


def has_gpu() -> bool:
    return bool(tf.config.list_physical_devices("GPU"))


def _view(image, params):
    """Image -> its view, by its (dy, dx, flip) from kdbench.augment.view_params: exact data movement, so the
    same pixels as kdbench.augment.apply_views computes in NumPy."""
    height, width = image.shape[0], image.shape[1]
    pad = augment.PAD
    padded = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]])
    cropped = tf.slice(padded, tf.stack([params[0], params[1], 0]), [height, width, image.shape[2]])
    return tf.cond(params[2] > 0, lambda: tf.reverse(cropped, axis=[1]), lambda: cropped)


def make_dataset(x, targets, batch_size: int, shuffle: bool, seed: int, views):
    """Batched, prefetched tf.data pipeline. With views, the epoch's (dy, dx, flip) of every image and its
    per-epoch targets sit in host variables that views' on_epoch_begin refills; the map reads them by index,
    carried through the shuffle."""
    if views is None:
        ds = tf.data.Dataset.from_tensor_slices((x, targets))
    else:
        ds = tf.data.Dataset.from_tensor_slices((x, targets, np.arange(len(x), dtype=np.int64)))
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    if views is not None:
        ds = ds.map(_epoch_map(views, len(x)), num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.batch(batch_size)
    return ds.prefetch(tf.data.AUTOTUNE)


def _epoch_map(views, images: int):
    indices = np.arange(images)
    with tf.device("/CPU:0"):  # host variables, like the pipeline; outside any strategy's scope
        epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="augment_epoch")
        params = tf.Variable(augment.view_params(views.seed, views.epoch, indices), trainable=False,
                             name="augment_params")
        cached = {name: tf.Variable(values.reshape(-1, *values.shape[2:]), trainable=False, name=f"epoch_{name}")
                  for name, values in views.epoch_targets.items()}  # a variable, not a graph constant: no 2 GB cap

    def set_epoch(number: int) -> None:
        params.assign(augment.view_params(views.seed, number, indices))
        epoch.assign(number)

    set_epoch(views.epoch)
    views.listeners.append(set_epoch)

    def map_element(image, targets, index):
        """(image, targets, index) -> (the epoch's view of the image, targets with the epoch's rows joined)."""
        image = _view(image, tf.gather(params, index))
        if cached:
            if not isinstance(targets, dict):
                raise ValueError("per-epoch targets need the targets as a dict, e.g. {'label': y}")
            targets = dict(targets)
            row = tf.identity(epoch) * images + index
            for name, values in cached.items():
                targets[name] = tf.gather(values, row)
        return image, targets

    return map_element


def dataset_batch_size(dataset) -> int | None:
    try:
        while dataset is not None:
            if getattr(dataset, "_batch_size", None) is not None:
                return int(dataset._batch_size)
            dataset = getattr(dataset, "_input_dataset", None)
    except (TypeError, ValueError):  # a batch size held in a symbolic tensor
        pass
    return None


def matmul_peak_gflops(dtype: str, size: int, repeats: int) -> float:
    a = tf.cast(tf.random.normal((size, size), dtype=tf.float32), dtype)
    matmul = tf.function(tf.linalg.matmul)
    matmul(a, a).numpy()  # trace and warm up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, a).numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best / 1e9
