import keras
import numpy as np

from kdbench import models
from kdbench.distill import Distiller, kd_loss


def numpy_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def numpy_kd_loss(labels, student, teacher, alpha, t):
    p_student = numpy_softmax(student)
    hard = -np.log(p_student[np.arange(len(labels)), labels]).mean()
    p_t, q_t = numpy_softmax(teacher / t), numpy_softmax(student / t)
    soft = (p_t * (np.log(p_t) - np.log(q_t))).sum(axis=1).mean() * t ** 2
    return alpha * hard + (1 - alpha) * soft, hard, soft


def test_kd_loss_matches_hand_computation():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 16)
    student = rng.normal(0, 3, (16, 10)).astype("float32")
    teacher = rng.normal(0, 3, (16, 10)).astype("float32")
    for alpha, t in [(0.3, 7.0), (0.9, 1.0), (0.0, 4.0)]:
        got = [float(v) for v in kd_loss(labels, student, teacher, alpha, t)]
        np.testing.assert_allclose(got, numpy_kd_loss(labels, student, teacher, alpha, t), rtol=1e-4)


def test_soft_loss_is_zero_when_student_matches_teacher():
    logits = np.random.default_rng(1).normal(0, 2, (8, 10)).astype("float32")
    _, _, soft = kd_loss(np.zeros(8, int), logits, logits, 0.3, 7.0)
    assert abs(float(soft)) < 1e-5


def _tiny_batch():
    rng = np.random.default_rng(2)
    return rng.normal(0, 50, (8, 32, 32, 3)).astype("float32"), rng.integers(0, 10, 8)


def test_online_teacher_is_never_updated():
    x, y = _tiny_batch()
    keras.utils.set_random_seed(0)
    teacher = models.build_resnet18(1, name="teacher")
    before = [w.numpy().copy() for w in teacher.weights]
    distiller = Distiller(models.build_resnet18(1), 0.3, 7.0, teacher=teacher)
    distiller.compile(optimizer=keras.optimizers.Adam(1e-3))
    distiller.fit(x, {"label": y}, epochs=2, batch_size=4, verbose=0)
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(before, teacher.weights))


def test_cached_and_online_teacher_give_the_same_loss():
    x, y = _tiny_batch()
    keras.utils.set_random_seed(0)
    teacher = models.build_resnet18(1, name="teacher")
    student = models.build_resnet18(1)
    cached = teacher.predict(x, verbose=0)
    online = Distiller(student, 0.3, 7.0, teacher=teacher)
    offline = Distiller(student, 0.3, 7.0)
    student_logits = student(x, training=False)
    loss_online = online.compute_loss(x, {"label": y}, student_logits)
    loss_cached = offline.compute_loss(x, {"label": y, "teacher_logits": cached}, student_logits)
    np.testing.assert_allclose(float(loss_online), float(loss_cached), rtol=1e-5)
