"""Progress inside an epoch: plain lines a log file can hold, with images/s and the epoch's ETA."""

import importlib.util
import itertools
import re

import keras
import numpy as np
import pytest

from kdbench import KdbenchError, train


def tiny_model():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    return model


def test_progress_lines_give_batch_rate_eta_and_loss(capsys):
    ticks = itertools.count()  # the callback's clock: one second per reading
    logger = train.ProgressLogger(every_seconds=None, every_batches=2, batch_size=4, device="CPU: test",
                                  clock=lambda: float(next(ticks)))
    x, y = np.ones((20, 4), "float32"), np.zeros((20, 2), "float32")
    tiny_model().fit(x, y, batch_size=4, epochs=2, verbose=0, shuffle=False, callbacks=[logger])
    out = capsys.readouterr().out
    assert "\r" not in out
    lines = out.splitlines()
    assert lines[0] == "training on CPU: test"
    # epoch_begin reads t=0, batch 1 ends at t=1 (rates start there: tracing is left out), batch 2 at t=2:
    # 1 batch/s = 4 images/s, and 3 batches to go = 3 s
    assert re.fullmatch(r"epoch 1/2, batch 2/5, 4\.0 images/s, epoch ETA 3s, loss \d+\.\d{4}", lines[1])
    assert re.fullmatch(r"epoch 1/2, batch 4/5, 4\.0 images/s, epoch ETA 1s, loss \d+\.\d{4}", lines[2])
    assert [line.split(",")[:2] for line in lines[3:]] == [["epoch 2/2", " batch 2/5"], ["epoch 2/2", " batch 4/5"]]


def test_progress_every_n_seconds_without_a_batch_size(capsys):
    ticks = itertools.count(step=10)  # ten seconds per batch
    logger = train.ProgressLogger(every_seconds=25, clock=lambda: float(next(ticks)))
    x, y = np.ones((24, 4), "float32"), np.zeros((24, 2), "float32")
    tiny_model().fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[logger])
    lines = capsys.readouterr().out.splitlines()
    # t=0 at epoch begin; batches end at 10, 20, 30, ...: lines at t=30 (batch 3) and t=60 (batch 6)
    assert [line.split(", ")[1] for line in lines] == ["batch 3/6", "batch 6/6"]
    assert lines[0].split(", ")[2:4] == ["0.10 batches/s", "epoch ETA 30s"]


@pytest.mark.parametrize("seconds, text", [(0.4, "0s"), (59.6, "1m00s"), (137, "2m17s"), (4000, "1h06m")])
def test_durations_read_as_minutes_and_hours(seconds, text):
    assert train._duration(seconds) == text


def test_batch_size_is_read_from_the_training_pipeline():
    x, y = np.zeros((10, 32, 32, 3), "float32"), np.zeros(10)
    assert train.dataset_batch_size(train.make_dataset(x, y, 4, shuffle=True)) == 4
    assert train.dataset_batch_size(object()) is None


def tiny_dataset():
    return train.make_dataset(np.ones((8, 4), "float32"), np.zeros((8, 2), "float32"), 4, shuffle=False)


def test_fit_resumable_names_the_device_and_writes_no_tensorboard_logs_by_default(tmp_path, capsys):
    train.fit_resumable(tiny_model(), tiny_dataset(), 1, tmp_path / "resume", verbose=0)
    assert f"training on {train.device_description()}" in capsys.readouterr().out
    assert not list(tmp_path.rglob("*tfevents*"))


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None, reason="the tensorboard extra is not installed")
def test_fit_resumable_writes_tensorboard_logs_on_request(tmp_path):
    train.fit_resumable(tiny_model(), tiny_dataset(), 1, tmp_path / "resume", verbose=0, tensorboard_dir=tmp_path / "tb")
    assert list((tmp_path / "tb").rglob("*tfevents*"))


def test_tensorboard_without_its_package_says_what_to_install(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None)
    with pytest.raises(KdbenchError, match=r"pip install -e '\.\[tensorboard\]'"):
        train.tensorboard_callback("logs")
