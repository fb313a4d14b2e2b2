"""Multi-GPU training: one strategy helper; 0/1 GPU keeps the default, N replicas train like one."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import tensorflow as tf
from conftest import ROOT

from kdbench import train


def test_no_gpu_or_one_gpu_keeps_the_default_strategy():
    default = tf.distribute.get_strategy()
    for devices in ([], ["/gpu:0"]):
        strategy = train.distribution_strategy(devices)
        assert strategy is default and strategy.num_replicas_in_sync == 1
    assert train.distribution_strategy().num_replicas_in_sync == max(1, len(tf.config.list_logical_devices("GPU")))


# Runs in a fresh process: logical devices must be configured before TensorFlow starts.
MIRRORED_VS_SINGLE = textwrap.dedent("""
    import json
    import keras
    import numpy as np
    import tensorflow as tf
    from kdbench import train
    from kdbench.distill import Distiller

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 6)).astype("float32")
    targets = {"label": rng.integers(0, 10, 16), "teacher_logits": rng.normal(0, 3, (16, 10)).astype("float32")}

    def one_epoch(strategy):
        keras.utils.set_random_seed(0)
        with strategy.scope():
            student = keras.Sequential([keras.Input((6,)), keras.layers.Dense(10)])
            model = Distiller(student, "kd", {"alpha": 0.3, "temperature": 4.0})
            model.compile(optimizer=keras.optimizers.SGD(0.1))
        ds = tf.data.Dataset.from_tensor_slices((x, targets)).batch(8)
        logs = model.fit(ds, epochs=1, verbose=0).history
        return {"replicas": strategy.num_replicas_in_sync, "weights": [w.tolist() for w in student.get_weights()],
                "logs": {k: float(v[-1]) for k, v in logs.items()}}

    print(json.dumps([one_epoch(train.distribution_strategy(["/cpu:0", "/cpu:1"])),
                      one_epoch(train.distribution_strategy([]))]))
""")


def test_two_replicas_train_like_one():
    result = subprocess.run([sys.executable, "-c", MIRRORED_VS_SINGLE], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr[-3000:]
    mirrored, single = json.loads(result.stdout.strip().splitlines()[-1])
    assert (mirrored["replicas"], single["replicas"]) == (2, 1)
    for got, expected in zip(mirrored["weights"], single["weights"]):  # gradients average the global batch
        np.testing.assert_allclose(got, expected, atol=1e-5)
    for name in ("loss", "hard_loss", "soft_loss", "accuracy"):  # logged values are not divided by replicas
        np.testing.assert_allclose(mirrored["logs"][name], single["logs"][name], rtol=1e-4, err_msg=name)
