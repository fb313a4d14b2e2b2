import keras
import numpy as np
import pytest

from kdbench import KdbenchError, hardware, models, train


@pytest.fixture
def restore_policy():
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("flags, gpu, expected", [
    ({"avx512f", "avx512_bf16"}, False, "mixed_bfloat16"),
    ({"amx_bf16"}, False, "mixed_bfloat16"),
    ({"avx512f", "avx2"}, False, "float32"),  # bf16 would be emulated: slower
    ({"avx512_bf16"}, True, "float32"),  # on a GPU the CPU's flags do not matter
])
def test_auto_precision_uses_bfloat16_only_on_a_cpu_with_native_bf16(monkeypatch, flags, gpu, expected):
    monkeypatch.setattr(hardware, "cpu_flags", lambda: flags)
    monkeypatch.setattr(hardware, "has_gpu", lambda: gpu)
    assert hardware.resolve_precision("auto") == expected
    assert hardware.resolve_precision("mixed_float16") == "mixed_float16"  # explicit choices are kept


def test_unknown_precision_is_refused():
    with pytest.raises(KdbenchError, match="mixed_bfloat16"):
        hardware.resolve_precision("bfloat16")


def test_mixed_precision_computes_in_bfloat16_and_returns_float32_logits(restore_policy):
    assert hardware.set_precision("mixed_bfloat16") == "mixed_bfloat16"
    for model in (models.build_resnet18(1), models.build_teacher(None, 1, frozen=True)):
        x = np.zeros((2, 32, 32, 3), "float32")
        assert model(x).dtype == "float32"
    assert models.build_resnet18(1).get_layer("stem_conv").compute_dtype == "bfloat16"


def test_jit_compile_flag_maps_cli_text_to_keras_values():
    assert hardware.jit_compile_flag("auto") == "auto"
    assert hardware.jit_compile_flag("true") is True and hardware.jit_compile_flag("false") is False


def test_augmentation_changes_images_every_epoch_and_keeps_labels():
    x = np.random.default_rng(0).normal(0, 50, (16, 32, 32, 3)).astype("float32")
    y = np.arange(16)
    plain = train.make_dataset(x, y, batch_size=16, shuffle=False)
    images, labels = next(iter(plain))
    np.testing.assert_array_equal(images, x)
    augmented = train.make_dataset(x, y, batch_size=16, shuffle=False, augment=True)
    (first, first_labels), = list(augmented)
    (second, _), = list(augmented)
    assert first.shape == x.shape and np.array_equal(first_labels, y)
    assert not np.allclose(first, x) and not np.allclose(first, second)
