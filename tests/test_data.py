import os
import pickle
import tarfile

import numpy as np
import pytest
from conftest import official_batch_bytes

from kdbench import KdbenchError
from kdbench import data


def test_archive_reader_returns_first_images_in_official_order(official_archive):
    path, expected = official_archive
    arrays = data.read_archive(path, train_size=14, test_size=4)
    np.testing.assert_array_equal(arrays["x_train"], expected["x_train"][:14])  # spans three batches
    np.testing.assert_array_equal(arrays["y_train"], expected["y_train"][:14])
    np.testing.assert_array_equal(arrays["x_test"], expected["x_test"][:4])
    np.testing.assert_array_equal(arrays["y_test"], expected["y_test"][:4])
    assert arrays["x_train"].dtype == np.uint8 and arrays["x_train"].shape == (14, 32, 32, 3)


def test_archive_reader_accepts_extracted_folder(official_archive, tmp_path):
    path, expected = official_archive
    with tarfile.open(path) as archive:
        archive.extractall(tmp_path / "extracted", filter="data")
    arrays = data.read_archive(tmp_path / "extracted", train_size=6, test_size=6)
    np.testing.assert_array_equal(arrays["x_test"], expected["x_test"])


def test_archive_with_wrong_checksum_is_refused(official_archive):
    path, _ = official_archive
    with pytest.raises(KdbenchError, match="sha256"):
        data.read_archive(path, 6, 6, expected_sha256=data.OFFICIAL_SHA256)


def test_truncated_archive_gives_clear_error(official_archive, tmp_path):
    path, _ = official_archive
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(path.read_bytes()[: os.path.getsize(path) // 2])
    with pytest.raises(KdbenchError, match="truncated|corrupt|not a readable"):
        data.read_archive(truncated, 30, 6)


def test_archive_asking_for_more_images_than_it_holds(official_archive):
    path, _ = official_archive
    with pytest.raises(KdbenchError, match="holds 30 training images"):
        data.read_archive(path, train_size=31, test_size=6)


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/kdbench-pwned",))


def test_malicious_pickle_is_refused_without_running_code(tmp_path):
    marker = "/tmp/kdbench-pwned"
    if os.path.exists(marker):
        os.remove(marker)
    payload = pickle.dumps({b"data": _Exploit(), b"labels": [0]}, protocol=2)
    with pytest.raises(KdbenchError, match="refusing to load"):
        data.read_batch(payload, "evil")
    assert not os.path.exists(marker)


def test_official_batch_layout_is_decoded_channel_last():
    images = np.zeros((1, 32, 32, 3), np.uint8)
    images[0, 0, 1, 2] = 255  # row 0, column 1, blue
    x, y = data.read_batch(official_batch_bytes(images, np.array([3])))
    assert x[0, 0, 1, 2] == 255 and x.sum() == 255 and y.tolist() == [3]


def test_npz_reader_slices_and_validates(tmp_path):
    path = tmp_path / "d.npz"
    rng = np.random.default_rng(0)
    np.savez(path, x_train=rng.integers(0, 255, (8, 32, 32, 3), dtype=np.uint8), y_train=np.arange(8).reshape(8, 1),
             x_test=rng.integers(0, 255, (4, 32, 32, 3), dtype=np.uint8), y_test=np.arange(4))
    arrays = data.read_npz(path, 5, 3)
    assert arrays["x_train"].shape == (5, 32, 32, 3) and arrays["y_train"].tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(KdbenchError, match="holds 4 test images"):
        data.read_npz(path, 5, 9)
    np.savez(path, x_train=np.zeros((2, 32, 32, 3)))
    with pytest.raises(KdbenchError, match="lacks array"):
        data.read_npz(path, 1, 1)


def test_synthetic_data_is_deterministic_and_balanced():
    a = data.make_synthetic(50, 20, seed=1)
    b = data.make_synthetic(50, 20, seed=1)
    np.testing.assert_array_equal(a["x_train"], b["x_train"])
    assert np.bincount(a["y_train"]).tolist() == [5] * 10
    assert a["x_test"].shape == (20, 32, 32, 3) and a["x_test"].dtype == np.uint8


def test_download_failure_says_where_to_put_the_file(monkeypatch, tmp_path):
    import keras

    def offline(*args, **kwargs):
        raise OSError("name resolution failed")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(KdbenchError) as err:
        data.fetch("download", None, 10, 10)
    message = str(err.value)
    assert str(tmp_path / "datasets" / "cifar-10-python.tar.gz") in message
    assert "data.source: archive" in message


def test_preprocess_matches_caffe_convention():
    image = np.zeros((1, 32, 32, 3), np.uint8)
    image[..., 0] = 200  # red channel
    out = data.preprocess(image)
    # BGR order, ImageNet means 103.939 (B), 116.779 (G), 123.68 (R) subtracted
    np.testing.assert_allclose(out[0, 0, 0], [-103.939, -116.779, 200 - 123.68], rtol=1e-5)


def test_validation_split_follows_training_slice_and_is_disjoint(official_archive):
    path, expected = official_archive
    arrays, info = data.fetch("archive", str(path), train_size=10, test_size=6, val_size=8, verify_checksum=False)
    np.testing.assert_array_equal(arrays["x_train"], expected["x_train"][:10])
    np.testing.assert_array_equal(arrays["x_val"], expected["x_train"][10:18])
    np.testing.assert_array_equal(arrays["x_test"], expected["x_test"])
    train_rows = {row.tobytes() for row in arrays["x_train"]}
    assert not train_rows & {row.tobytes() for row in arrays["x_val"]}
    assert not train_rows & {row.tobytes() for row in arrays["x_test"]}
    assert info["val_size"] == 8


def test_validation_split_counts_against_available_training_images(official_archive):
    path, _ = official_archive
    with pytest.raises(KdbenchError, match="data.train_size \\+ data.val_size"):
        data.fetch("archive", str(path), train_size=25, test_size=6, val_size=6, verify_checksum=False)
