"""Preflight: every missing input (data, each teacher's weights) named at once with its fix, offline-fast."""

import os
import socket
import subprocess
import sys
import time

import pytest
from conftest import ROOT

from kdbench import preflight

RESNET50 = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    home = tmp_path / "keras"
    monkeypatch.setenv("KERAS_HOME", str(home))
    monkeypatch.chdir(tmp_path)
    return home


class Probe:
    """A network that reaches only the hosts given; records what was asked."""

    def __init__(self, *online):
        self.online, self.asked = set(online), []

    def __call__(self, hosts):
        self.asked.append(list(hosts))
        return {host: host in self.online for host in hosts}


def config(source="download", path=None, frozen="imagenet", finetuned="imagenet"):
    return {"data": {"source": source, "path": path},
            "teachers": {"frozen": {"architecture": "resnet50", "weights": frozen},
                         "finetuned": {"architecture": "resnet50", "weights": finetuned}}}


def test_offline_without_cached_files_names_data_and_every_teacher_at_once(keras_home):
    probe = Probe()
    problems = preflight.missing_inputs(config(), probe=probe)
    assert len(problems) == 2
    assert problems[0].startswith("data: CIFAR-10 is not in the Keras cache")
    assert str(keras_home / "datasets" / "cifar-10-python.tar.gz") in problems[0] and "--preset offline" in problems[0]
    assert problems[1].startswith("teachers.frozen.weights and teachers.finetuned.weights: the ImageNet weights "
                                  "of resnet50 are not in the Keras cache")
    assert str(keras_home / "models" / RESNET50) in problems[1] and "set them to null" in problems[1]
    assert probe.asked == [["www.cs.toronto.edu", "storage.googleapis.com"]]
    assert "2 input(s)" in preflight.report(problems) and preflight.report([]) == ""
    (problem,) = preflight.missing_inputs(config("synthetic", finetuned=None), probe=probe)
    assert problem.startswith("teachers.frozen.weights: the ImageNet") and "set it to null" in problem


def test_online_nothing_is_missing(keras_home):
    assert preflight.missing_inputs(config(), probe=Probe("www.cs.toronto.edu", "storage.googleapis.com")) == []


def test_cached_files_need_no_network(keras_home):
    (keras_home / "datasets").mkdir(parents=True)
    (keras_home / "datasets" / "cifar-10-python.tar.gz").write_bytes(b"x")
    (keras_home / "models").mkdir()
    (keras_home / "models" / RESNET50).write_bytes(b"x")
    probe = Probe()
    assert preflight.missing_inputs(config(), probe=probe) == [] and probe.asked == []


def test_archive_and_npz_paths(keras_home, tmp_path):
    no_weights = {"frozen": None, "finetuned": None}
    probe = Probe()
    assert preflight.missing_inputs(config("archive", None, **no_weights), probe=probe) == [
        "data: data.source is archive but data.path is not set. Fix: set data.path to the official "
        "cifar-10-python.tar.gz or its extracted cifar-10-batches-py folder (e.g. --set "
        "data.path=data/cifar-10-python.tar.gz)"]
    (problem,) = preflight.missing_inputs(config("archive", "data/cifar-10-python.tar.gz", **no_weights), probe=probe)
    assert "data.path data/cifar-10-python.tar.gz does not exist" in problem and "download https://" in problem
    (tmp_path / "data" / "cifar-10-batches-py").mkdir(parents=True)  # only the extracted folder is there
    (problem,) = preflight.missing_inputs(config("archive", "data/cifar-10-python.tar.gz", **no_weights), probe=probe)
    assert problem.endswith("--set data.path=data/cifar-10-batches-py")
    (tmp_path / "data" / "cifar-10-python.tar.gz").write_bytes(b"x")
    assert preflight.missing_inputs(config("archive", "data/cifar-10-python.tar.gz", **no_weights), probe=probe) == []
    (problem,) = preflight.missing_inputs(config("npz", None, **no_weights), probe=probe)
    assert "data.source is npz but data.path is not set" in problem
    assert preflight.missing_inputs(config("synthetic", None, **no_weights), probe=probe) == []
    assert probe.asked == []  # local files only: no network


def test_weights_paths_null_weights_and_dropped_teachers(keras_home, tmp_path):
    (tmp_path / "w.h5").write_bytes(preflight.HDF5_SIGNATURE + b"rest of an HDF5 file")
    settings = config("synthetic", frozen=str(tmp_path / "w.h5"), finetuned="weights/missing.h5")
    (problem,) = preflight.missing_inputs(settings, probe=Probe())
    assert problem.startswith("teachers.finetuned.weights: weights/missing.h5 is not a file") and RESNET50 in problem
    settings["teachers"]["finetuned"] = None  # dropped by a preset
    assert preflight.missing_inputs(settings, probe=Probe()) == []
    assert preflight.missing_inputs(config("synthetic", frozen=None, finetuned=None), probe=Probe()) == []


def test_probe_is_bounded_in_time_even_when_the_network_hangs(monkeypatch):
    monkeypatch.setattr(preflight, "_connects", lambda address, timeout: time.sleep(30))
    start = time.monotonic()
    assert preflight.reachable(["a.example", "b.example"], timeout=0.3) == {"a.example": False, "b.example": False}
    assert time.monotonic() - start < 1.5


def test_probe_connects_to_a_listening_port_only(monkeypatch):
    for name in ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        monkeypatch.setattr(preflight, "_probe_address", lambda host: (host, port))
        assert preflight.reachable(["127.0.0.1"], timeout=2) == {"127.0.0.1": True}
    assert preflight.reachable(["127.0.0.1"], timeout=2) == {"127.0.0.1": False}  # closed now


def test_preflight_imports_no_tensorflow():
    code = ("import sys; from kdbench import preflight; preflight.missing_inputs({'data': {'source': 'synthetic'}}); "
            "print('tensorflow' in sys.modules or 'keras' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.stdout.strip() == "False", result.stderr[-2000:]


def test_the_offline_preset_needs_only_the_archive_in_data_and_no_network(keras_home, tmp_path):
    import yaml

    offline = yaml.safe_load((ROOT / "presets" / "offline.yaml").read_text())
    probe = Probe()
    (problem,) = preflight.missing_inputs(offline, probe=probe)
    assert problem.startswith("data: data.path data/cifar-10-python.tar.gz does not exist")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "cifar-10-python.tar.gz").write_bytes(b"x")
    assert preflight.missing_inputs(offline, probe=probe) == [] and probe.asked == []


def test_the_data_set_and_architecture_registries_name_the_files(keras_home):
    settings = {"data": {"dataset": "cifar100", "source": "download"},
                "teachers": {"big": {"architecture": "efficientnetb0", "weights": "imagenet"},
                             "made-up": {"architecture": "no-such-net", "weights": "imagenet"}}}
    data, weights = preflight.missing_inputs(settings, probe=Probe())
    assert "CIFAR-100 is not in the Keras cache" in data and "cifar-100-python.tar.gz" in data
    assert "--preset offline" not in data  # that preset is CIFAR-10's
    assert weights.startswith("teachers.big.weights: the ImageNet weights of efficientnetb0")
    assert str(keras_home / "models" / "efficientnetb0_notop.h5") in weights
    assert "its path" not in weights  # Keras takes EfficientNet's ImageNet weights only as weights: imagenet


def test_a_weights_file_that_is_not_hdf5_is_named_with_its_key(keras_home, tmp_path):
    for name, content, kind in (("model.keras", b"PK\x03\x04zip", "a .keras model file"),
                                ("page.h5", b"<!DOCTYPE html><html>", "an HTML page"),
                                ("cut.h5", b"\x89HD", "")):
        (tmp_path / name).write_bytes(content)
        settings = config("synthetic", frozen=str(tmp_path / name), finetuned=None)
        (problem,) = preflight.missing_inputs(settings, probe=Probe())
        assert problem.startswith(f"teachers.frozen.weights: {tmp_path / name} is not an HDF5 file"), problem
        assert kind in problem and RESNET50 in problem and "Fix:" in problem
        # a teacher already trained needs its weights file no more
        assert preflight.missing_inputs(settings, probe=Probe(), done={"frozen"}) == []


def write_labels_npz(path, labels):
    import numpy as np

    n = len(labels)
    np.savez(path, x_train=np.zeros((n, 32, 32, 3), np.uint8), y_train=np.array(labels),
             x_test=np.zeros((n, 32, 32, 3), np.uint8), y_test=np.array(labels))


def test_an_npz_with_fewer_classes_than_declared_gets_a_warning_not_an_error(keras_home, tmp_path):
    write_labels_npz(tmp_path / "ten.npz", list(range(10)) * 2)
    settings = config("npz", str(tmp_path / "ten.npz"), frozen=None, finetuned=None)
    settings["data"]["dataset"] = "cifar100"
    assert preflight.missing_inputs(settings, probe=Probe()) == []  # the run may go on
    (warning,) = preflight.content_warnings(settings)
    assert warning.startswith(f"data.path {tmp_path / 'ten.npz'}: its labels cover 10 classes (0..9)")
    assert "cifar100 declares 100" in warning and "set data.dataset: cifar10" in warning
    assert preflight.content_warnings(settings, done={"data"}) == []  # the data step has run already
    settings["data"]["dataset"] = "cifar10"
    assert preflight.content_warnings(settings) == []
    write_labels_npz(tmp_path / "nine.npz", list(range(9)))  # one class missing from a CIFAR-10 file
    settings["data"]["path"] = str(tmp_path / "nine.npz")
    (warning,) = preflight.content_warnings(settings)
    assert "9 classes (0..8)" in warning and "cifar10 declares 10" in warning and "set data.dataset" not in warning
