import dataclasses
import hashlib
import inspect
import os
import pickle
import tarfile

import numpy as np
import pytest
from conftest import official_batch_bytes, write_official_archive

from kdbench import KdbenchError
from kdbench import datasets
from kdbench.io import sha256_of

CIFAR10, CIFAR100 = datasets.get("cifar10"), datasets.get("cifar100")


@pytest.fixture
def official_sha256(monkeypatch):
    """Make the registry's official checksum of a data set that of a generated archive (to test 'verified')."""
    def set_official(name: str, path) -> str:
        digest = sha256_of(path)
        monkeypatch.setitem(datasets.DATASETS, name, dataclasses.replace(datasets.DATASETS[name], sha256=digest))
        return digest
    return set_official


# ------------------------------------------------------------------------------------------- registry
def test_registry_names_and_unknown_data_set():
    assert datasets.names() == ["cifar10", "cifar100"]
    with pytest.raises(KdbenchError, match="data.dataset is 'mnist'; use one of cifar10, cifar100"):
        datasets.get("mnist")


def test_cifar100_spec_has_the_official_fine_classes_in_order():
    names = CIFAR100.class_names
    assert CIFAR100.num_classes == 100 and len(set(names)) == 100
    assert names == tuple(sorted(names))  # the official meta file lists the fine labels alphabetically
    assert (names[0], names[4], names[55], names[99]) == ("apple", "beaver", "otter", "worm")
    assert CIFAR100.label_key == b"fine_labels" and (CIFAR100.train_size, CIFAR100.test_size) == (50_000, 10_000)
    assert CIFAR10.num_classes == 10 and CIFAR10.class_names[3] == "cat"


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_official_checksums_are_the_ones_keras_records(name):
    import importlib

    loader = importlib.import_module(f"keras.src.datasets.{name}")
    source = inspect.getsource(loader.load_data)
    spec = datasets.get(name)
    assert spec.sha256 in source and spec.url in source


# -------------------------------------------------------------------------------------- CIFAR-10 archive
def test_archive_reader_returns_first_images_in_official_order(official_archive):
    path, expected = official_archive
    arrays, _ = datasets.read_archive(CIFAR10, path, train_size=14, test_size=4)
    np.testing.assert_array_equal(arrays["x_train"], expected["x_train"][:14])  # spans three batches
    np.testing.assert_array_equal(arrays["y_train"], expected["y_train"][:14])
    np.testing.assert_array_equal(arrays["x_test"], expected["x_test"][:4])
    np.testing.assert_array_equal(arrays["y_test"], expected["y_test"][:4])
    assert arrays["x_train"].dtype == np.uint8 and arrays["x_train"].shape == (14, 32, 32, 3)


def test_archive_reader_accepts_extracted_folder(official_archive, tmp_path):
    path, expected = official_archive
    with tarfile.open(path) as archive:
        archive.extractall(tmp_path / "extracted", filter="data")
    arrays, _ = datasets.read_archive(CIFAR10, tmp_path / "extracted", train_size=6, test_size=6)
    np.testing.assert_array_equal(arrays["x_test"], expected["x_test"])


def test_archive_with_wrong_checksum_is_refused(official_archive):
    path, _ = official_archive
    with pytest.raises(KdbenchError, match=f"has sha256 {sha256_of(path)}, not the official {CIFAR10.sha256}"):
        datasets.read_archive(CIFAR10, path, 6, 6, expected_sha256=CIFAR10.sha256)


def test_truncated_archive_is_called_corrupt(official_archive, tmp_path):
    path, _ = official_archive
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(path.read_bytes()[: os.path.getsize(path) // 2])
    with pytest.raises(KdbenchError, match="truncated.tar.gz is a corrupt archive") as err:
        datasets.read_archive(CIFAR10, truncated, 30, 6)
    assert "data_batch" not in str(err.value)  # not mistaken for an archive that lacks batches


def test_archive_with_flipped_bytes_is_called_corrupt(official_archive, tmp_path):
    path, _ = official_archive
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged = tmp_path / "damaged.tar.gz"
    damaged.write_bytes(bytes(data))
    with pytest.raises(KdbenchError, match="damaged.tar.gz is a corrupt archive"):
        datasets.read_archive(CIFAR10, damaged, 30, 6)


def test_well_formed_archive_lacking_batches_says_what_it_lacks(tmp_path):
    path = tmp_path / "partial.tar.gz"
    write_official_archive(path, skip=("data_batch_4", "test_batch"))
    with pytest.raises(KdbenchError) as err:
        datasets.read_archive(CIFAR10, path, 6, 6)  # needs one batch only, but the archive is incomplete
    message = str(err.value)
    assert "lacks cifar-10-batches-py/data_batch_4, cifar-10-batches-py/test_batch" in message
    assert "it is not the official cifar-10-python.tar.gz (expected cifar-10-batches-py/ with data_batch_1" in message
    assert "corrupt" not in message


def test_cifar10_archive_read_as_cifar100_names_the_right_data_set(official_archive):
    path, _ = official_archive
    with pytest.raises(KdbenchError, match="lacks cifar-100-python/train, cifar-100-python/test.*"
                                           "it looks like CIFAR-10: set data.dataset: cifar10"):
        datasets.read_archive(CIFAR100, path, 6, 6)


def test_archive_asking_for_more_images_than_it_holds(official_archive):
    path, _ = official_archive
    with pytest.raises(KdbenchError, match="holds 30 training images"):
        datasets.read_archive(CIFAR10, path, train_size=31, test_size=6)


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/kdbench-pwned",))


def test_malicious_pickle_is_refused_without_running_code():
    marker = "/tmp/kdbench-pwned"
    if os.path.exists(marker):
        os.remove(marker)
    payload = pickle.dumps({b"data": _Exploit(), b"labels": [0]}, protocol=2)
    with pytest.raises(KdbenchError, match="refusing to load"):
        datasets.read_batch(payload, CIFAR10, "evil")
    assert not os.path.exists(marker)


def test_official_batch_layout_is_decoded_channel_last():
    images = np.zeros((1, 32, 32, 3), np.uint8)
    images[0, 0, 1, 2] = 255  # row 0, column 1, blue
    x, y = datasets.read_batch(official_batch_bytes(images, np.array([3])), CIFAR10)
    assert x[0, 0, 1, 2] == 255 and x.sum() == 255 and y.tolist() == [3]


# ------------------------------------------------------------------------------ batch contents (archives)
def _batch(data=None, labels=None) -> bytes:
    batch = {b"data": np.zeros((2, 3072), np.uint8) if data is None else data,
             b"labels": [0, 1] if labels is None else labels}
    return pickle.dumps(batch, protocol=2)


@pytest.mark.parametrize("payload, message", [
    pytest.param(_batch(labels=[0, 10]), r"b'labels' holds labels from 0 to 10, outside 0..9 \(10 classes\)",
                 id="label-out-of-range"),
    pytest.param(_batch(labels=[0, 1, 2]), "2 images but 3 labels", id="count-mismatch"),
    pytest.param(_batch(data=np.zeros((2, 3072), np.float32)), "b'data' has dtype float32",
                 id="float-pixels"),
    pytest.param(_batch(data=np.zeros((2, 1024), np.uint8)),
                 r"b'data' has shape \(2, 1024\), expected \(N, 3072\)", id="wrong-row-length"),
    pytest.param(_batch(labels=[0.0, 1.5]), "b'labels' has dtype float64", id="float-labels"),
    pytest.param(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"fine_labels": [0, 1]}),
                 "lacks b'labels'.*it looks like CIFAR-100; set data.dataset: cifar100", id="cifar100-batch"),
    pytest.param(pickle.dumps([1, 2, 3]), "holds a list, not a dict", id="not-a-dict"),
])
def test_batch_contents_are_checked(payload, message):
    with pytest.raises(KdbenchError, match=message) as err:
        datasets.read_batch(payload, CIFAR10, "archive.tar.gz:data_batch_1")
    assert str(err.value).startswith("archive.tar.gz:data_batch_1") and "\n" not in str(err.value)


# ----------------------------------------------------------------------------------------------- CIFAR-100
def test_cifar100_from_archive_file_reads_fine_labels(cifar100_archive):
    path, expected = cifar100_archive
    arrays, info = datasets.fetch("cifar100", "archive", str(path), train_size=20, test_size=6, val_size=10,
                                  verify_checksum=False)
    np.testing.assert_array_equal(arrays["x_train"], expected["x_train"][:20])
    np.testing.assert_array_equal(arrays["y_val"], expected["y_train"][20:])  # fine labels, up to 99
    np.testing.assert_array_equal(arrays["y_test"], expected["y_test"])
    assert arrays["y_test"].max() == 99
    assert info["dataset"] == "cifar100" and info["num_classes"] == 100 and info["class_names"][99] == "worm"


def test_cifar100_from_extracted_folder_hashes_the_batches_it_read(cifar100_archive, tmp_path):
    path, expected = cifar100_archive
    with tarfile.open(path) as archive:
        archive.extractall(tmp_path / "extracted", filter="data")
    arrays, info = datasets.fetch("cifar100", "archive", str(tmp_path / "extracted"), train_size=30, test_size=6)
    np.testing.assert_array_equal(arrays["x_test"], expected["x_test"])
    folder = tmp_path / "extracted" / "cifar-100-python"
    assert info["batch_sha256"] == {"train": sha256_of(folder / "train"), "test": sha256_of(folder / "test")}
    assert info["verification"].startswith("archive checksum not verified (extracted folder)")
    assert info["sha256"] is None and info["sha256_verified"] is False  # never claims the official sha256


def test_cifar100_from_npz(cifar100_archive, tmp_path):
    _, expected = cifar100_archive
    path = tmp_path / "c100.npz"
    np.savez(path, **expected)
    arrays, info = datasets.fetch("cifar100", "npz", str(path), train_size=25, test_size=6, val_size=5)
    np.testing.assert_array_equal(arrays["y_val"], expected["y_train"][25:])
    assert info["sha256"] == sha256_of(path) and info["verification"] == (
        f"npz sha256: {sha256_of(path)} (a user file: no official checksum to compare with)")
    with pytest.raises(KdbenchError, match=r"holds labels from \d+ to 99, outside 0..9 \(10 classes\)"):
        datasets.fetch("cifar10", "npz", str(path), 25, 6)  # CIFAR-100 labels are not CIFAR-10 classes


# -------------------------------------------------------------------------------------------- provenance
def test_archive_provenance_says_verified_only_when_checked(official_archive, official_sha256):
    path, _ = official_archive
    _, unverified = datasets.fetch("cifar10", "archive", str(path), 6, 6, verify_checksum=False)
    assert unverified["verification"] == ("not verified (data.verify_checksum: false); sha256 of the file read: "
                                          f"{sha256_of(path)}")
    assert unverified["sha256_verified"] is False
    digest = official_sha256("cifar10", path)
    _, verified = datasets.fetch("cifar10", "archive", str(path), 6, 6)
    assert verified["verification"] == f"sha256 verified: {digest}" and verified["sha256_verified"] is True


def test_download_provenance_is_verified(official_archive, official_sha256, monkeypatch):
    import keras

    path, _ = official_archive
    digest = official_sha256("cifar10", path)
    calls = []
    monkeypatch.setattr(keras.utils, "get_file", lambda *args, **kwargs: calls.append(kwargs) or str(path))
    _, info = datasets.fetch("cifar10", "download", None, 6, 6, verify_checksum=False)
    assert calls[0]["file_hash"] == digest  # Keras checks the download against the official sha256 ...
    assert info["verification"] == f"sha256 verified: {digest}"  # ... and so does kdbench


def test_synthetic_provenance_names_what_it_is():
    arrays, info = datasets.fetch("cifar100", "synthetic", None, 200, 100, val_size=50)
    assert info["verification"] == "synthetic: generated images, not CIFAR-100; nothing to verify"
    assert arrays["y_train"].max() == 99 and len(arrays["x_val"]) == 50


# ------------------------------------------------------------------------------------------------ sources
def test_npz_reader_slices_and_validates(tmp_path):
    path = tmp_path / "d.npz"
    rng = np.random.default_rng(0)
    np.savez(path, x_train=rng.integers(0, 255, (8, 32, 32, 3), dtype=np.uint8), y_train=np.arange(8).reshape(8, 1),
             x_test=rng.integers(0, 255, (4, 32, 32, 3), dtype=np.uint8), y_test=np.arange(4))
    arrays, _ = datasets.read_npz(CIFAR10, path, 5, 3)
    assert arrays["x_train"].shape == (5, 32, 32, 3) and arrays["y_train"].tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(KdbenchError, match="holds 4 test images"):
        datasets.read_npz(CIFAR10, path, 5, 9)
    np.savez(path, x_train=np.zeros((2, 32, 32, 3)))
    with pytest.raises(KdbenchError, match="lacks array"):
        datasets.read_npz(CIFAR10, path, 1, 1)


def test_npz_with_another_data_sets_class_names_is_refused(tmp_path):
    path = tmp_path / "d.npz"
    arrays = datasets.make_synthetic(4, 4)
    datasets.save_dataset(path, arrays, CIFAR10.class_names)
    with pytest.raises(KdbenchError, match="holds class_names for 10 classes .* not CIFAR-100's; set data.dataset"):
        datasets.read_npz(CIFAR100, path, 4, 4)


def test_integer_images_in_range_are_accepted_exactly(tmp_path):
    path = tmp_path / "d.npz"
    x = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3)).astype(np.int32)
    np.savez(path, x_train=x, y_train=np.arange(4), x_test=x, y_test=np.arange(4))
    arrays, _ = datasets.read_npz(CIFAR10, path, 4, 4)
    assert arrays["x_train"].dtype == np.uint8
    np.testing.assert_array_equal(arrays["x_train"].astype(np.int32), x)


def test_synthetic_data_is_deterministic_and_balanced():
    a = datasets.make_synthetic(50, 20, seed=1)
    b = datasets.make_synthetic(50, 20, seed=1)
    np.testing.assert_array_equal(a["x_train"], b["x_train"])
    assert np.bincount(a["y_train"]).tolist() == [5] * 10
    assert a["x_test"].shape == (20, 32, 32, 3) and a["x_test"].dtype == np.uint8


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_download_failure_says_where_to_put_the_file(name, monkeypatch, tmp_path):
    import keras

    def offline(*args, **kwargs):
        raise OSError("name resolution failed")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    spec = datasets.get(name)
    with pytest.raises(KdbenchError) as err:
        datasets.fetch(name, "download", None, 10, 10)
    message = str(err.value)
    assert f"Copy the official {spec.filename} to {tmp_path / 'datasets' / spec.filename}" in message
    assert f"data.source: archive with data.path: /path/to/{spec.filename}" in message
    assert "data.source: npz with data.path: /path/to/file.npz" in message and "\n" not in message


def test_validation_split_follows_training_slice_and_is_disjoint(official_archive):
    path, expected = official_archive
    arrays, info = datasets.fetch("cifar10", "archive", str(path), train_size=10, test_size=6, val_size=8,
                                  verify_checksum=False)
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
        datasets.fetch("cifar10", "archive", str(path), train_size=25, test_size=6, val_size=6, verify_checksum=False)


# -------------------------------------------------------------------------------------- the data set file
def test_saved_data_set_carries_its_class_names(tmp_path):
    path = tmp_path / "data.npz"
    arrays, info = datasets.fetch("cifar100", "synthetic", None, 30, 10, val_size=5)
    datasets.save_dataset(path, arrays, info["class_names"])
    loaded = datasets.load_dataset(path)
    assert loaded["class_names"] == list(CIFAR100.class_names)
    for key, value in arrays.items():
        np.testing.assert_array_equal(loaded[key], value)


def test_data_set_file_without_class_names_is_refused(tmp_path):
    path = tmp_path / "data.npz"
    np.savez(path, **datasets.make_synthetic(4, 4))
    with pytest.raises(KdbenchError, match="has no class_names: it was written by an older kdbench or by hand"):
        datasets.load_dataset(path)


def test_data_set_file_labels_are_checked_against_its_own_class_names(tmp_path):
    path = tmp_path / "data.npz"
    arrays = datasets.make_synthetic(20, 20)  # labels 0..9
    np.savez(path, **arrays, class_names=np.array(["a", "b", "c"]))
    with pytest.raises(KdbenchError, match=r"data.npz: y_train holds labels from 0 to 9, outside 0..2 \(3 classes\)"):
        datasets.load_dataset(path)


def test_check_labels_for_evaluation():
    assert datasets.check_labels(np.array([[1], [2]], np.uint8), 10, "labels").tolist() == [1, 2]
    with pytest.raises(KdbenchError, match=r"test labels holds labels from 0 to 10, outside 0..9"):
        datasets.check_labels(np.array([0, 10]), 10, "test labels")


def test_archive_member_hashes_match_bytes_read(official_archive, tmp_path):
    path, _ = official_archive
    with tarfile.open(path) as archive:
        archive.extractall(tmp_path / "x", filter="data")
    _, info = datasets.fetch("cifar10", "archive", str(tmp_path / "x"), 6, 6)
    data = (tmp_path / "x" / "cifar-10-batches-py" / "data_batch_1").read_bytes()
    assert info["batch_sha256"]["data_batch_1"] == hashlib.sha256(data).hexdigest()
    assert set(info["batch_sha256"]) == {"data_batch_1", "test_batch"}  # only the batches it read

