"""The Distiller: any registered method trains a student; the teacher never changes; method pieces are not saved."""

import keras
import numpy as np

from kdbench import architectures
from kdbench.distill import Distiller, EpochCounter

SETTING = {"alpha": 0.3, "temperature": 7.0}


def _tiny_batch():
    rng = np.random.default_rng(2)
    return rng.integers(0, 256, (8, 32, 32, 3)).astype("float32"), rng.integers(0, 10, 8)


def test_online_teacher_is_never_updated():
    x, y = _tiny_batch()
    keras.utils.set_random_seed(0)
    teacher = architectures.build("resnet18", 10, 1, name="teacher")
    before = [w.numpy().copy() for w in teacher.weights]
    distiller = Distiller(architectures.build("resnet18", 10, 1), "kd", SETTING, teacher=teacher)
    distiller.compile(optimizer=keras.optimizers.Adam(1e-3))
    distiller.fit(x, {"label": y}, epochs=2, batch_size=4, verbose=0)
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(before, teacher.weights))


def test_cached_and_online_teacher_give_the_same_loss():
    x, y = _tiny_batch()
    keras.utils.set_random_seed(0)
    teacher = architectures.build("resnet18", 10, 1, name="teacher")
    student = architectures.build("resnet18", 10, 1)
    cached = teacher.predict(x, verbose=0)
    online = Distiller(student, "kd", SETTING, teacher=teacher)
    offline = Distiller(student, "kd", SETTING)
    student_logits = student(x, training=False)
    loss_online = online.compute_loss(x, {"label": y}, student_logits)
    loss_cached = offline.compute_loss(x, {"label": y, "teacher_logits": cached}, student_logits)
    np.testing.assert_allclose(float(loss_online), float(loss_cached), rtol=1e-5)


def test_feature_method_trains_its_connector_and_the_student_saves_without_it(tmp_path):
    x, y = _tiny_batch()
    keras.utils.set_random_seed(0)
    teacher = architectures.build("resnet50", 10, 1, weights=None, train_backbone=True, name="teacher")
    student = architectures.build("resnet18", 10, 1, name="student")
    distiller = Distiller(student, "fitnets", {"weight": 100.0, "student_stage": "stage2", "teacher_stage": "stage2"},
                          teacher=teacher, student_architecture="resnet18", teacher_architecture="resnet50")
    distiller.compile(optimizer=keras.optimizers.Adam(1e-3))
    connector = distiller.connectors[0]
    connector_before = [w.numpy().copy() for w in connector.trainable_weights]
    history = distiller.fit(x, {"label": y}, epochs=1, batch_size=4, verbose=0, callbacks=[EpochCounter()])
    assert {"hard_loss", "hint_loss", "accuracy"} <= set(history.history)
    assert any(not np.array_equal(a, w.numpy()) for a, w in zip(connector_before, connector.trainable_weights))
    student.save(tmp_path / "student.keras")
    loaded = keras.models.load_model(tmp_path / "student.keras")
    assert loaded.count_params() == student.count_params()  # no connector inside
    np.testing.assert_allclose(loaded.predict(x, verbose=0), student.predict(x, verbose=0), rtol=1e-5, atol=1e-5)


def test_epoch_counter_tells_the_distiller_its_epoch():
    x, y = _tiny_batch()
    keras.utils.set_random_seed(0)
    distiller = Distiller(architectures.build("resnet18", 10, 1), "kd", SETTING)
    distiller.compile(optimizer=keras.optimizers.Adam(1e-3))
    teacher_logits = np.zeros((8, 10), "float32")
    distiller.fit(x, {"label": y, "teacher_logits": teacher_logits}, epochs=3, batch_size=8, verbose=0,
                  callbacks=[EpochCounter()])
    assert float(distiller.epoch.numpy()) == 2.0  # 0-based: the third epoch
