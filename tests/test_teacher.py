import keras
import numpy as np
import pytest

from kdbench import KdbenchError, models, teacher


def _images(n=24, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(0, 50, (n, 32, 32, 3)).astype("float32"), rng.integers(0, 10, n)


def _fit(x, y, tmp_path, cache_features, name):
    keras.utils.set_random_seed(0)
    model = models.build_teacher(None, upsample=1, frozen=True)
    history, feature_seconds = teacher.fit_teacher(
        model, x, y, upsample=1, learning_rate=1e-3, batch_size=8, epochs=2, seed=0,
        resume_dir=tmp_path / name, cache_features=cache_features)
    return model, history, feature_seconds


def test_saved_teacher_predicts_what_its_head_predicts_on_cached_features(tmp_path):
    x, y = _images()
    keras.utils.set_random_seed(0)
    model = models.build_teacher(None, upsample=1, frozen=True)
    features = teacher.backbone_features(model, x, upsample=1, batch_size=8)  # before training: backbone is fixed
    untrained = model.get_layer("head").predict(features, verbose=0)
    teacher.fit_teacher(model, x, y, upsample=1, learning_rate=1e-2, batch_size=8, epochs=2, seed=0,
                        resume_dir=tmp_path / "resume", cache_features=True)
    head_on_features = model.get_layer("head").predict(features, verbose=0)
    assert not np.allclose(untrained, head_on_features, atol=1e-3)  # the head did train
    model.save(tmp_path / "teacher.keras")
    loaded = keras.models.load_model(tmp_path / "teacher.keras")
    assert loaded.count_params() == model.count_params()  # the full teacher, backbone included
    np.testing.assert_allclose(loaded.predict(x, verbose=0), head_on_features, rtol=1e-4, atol=1e-4)


def test_cached_features_train_the_head_as_the_full_model_would(tmp_path):
    x, y = _images()
    cached, cached_history, feature_seconds = _fit(x, y, tmp_path, True, "cached")
    full, full_history, no_feature_seconds = _fit(x, y, tmp_path, False, "full")
    assert feature_seconds > 0 and no_feature_seconds == 0
    for a, b in zip(cached.get_layer("head").weights, full.get_layer("head").weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-3, atol=1e-4, err_msg=a.path)
    np.testing.assert_allclose(cached_history["loss"], full_history["loss"], rtol=1e-4)


def test_features_of_a_trainable_backbone_are_not_cached(tmp_path):
    x, y = _images(8)
    model = models.build_teacher(None, upsample=1, frozen=False)
    with pytest.raises(KdbenchError, match="frozen teacher"):
        teacher.fit_teacher(model, x, y, upsample=1, learning_rate=1e-3, batch_size=8, epochs=1, seed=0,
                            resume_dir=tmp_path / "r", cache_features=True)
