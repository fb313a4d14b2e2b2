"""Training runtime: threads, seeds, input (kdbench.runtime: every backend), and a resumable fit that writes
checkpoint + history."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import os
import shutil
import signal
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from kdbench import KdbenchError, runtime
from kdbench.io import atomic_path, write_json


def weights_digest(model: keras.Model) -> str:
    """sha256 of a model's weights, in order: equal digests mean equal weights (paired runs start equal)."""
    import hashlib

    digest = hashlib.sha256()
    for weight in model.weights:
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight)).tobytes())
    return digest.hexdigest()


def configure_runtime(threads: int, seed: int, deterministic: bool = True) -> None:
    """Pin the backend to the rule's threads (Snakemake cannot), seed every generator and, by default,
    make ops deterministic: the same inputs, flags and seed on the same machine and backend give identical
    results (kdbench.runtime.configure)."""
    runtime.configure(threads, seed, deterministic)


def distribution_strategy(devices: list[str] | None = None):
    """Data-parallel training over every visible GPU (TensorFlow's MirroredStrategy; one device per job on JAX
    and PyTorch): build and compile models inside `strategy.scope()` (kdbench.runtime.distribution_strategy)."""
    return runtime.distribution_strategy(devices)


def device_description() -> str:
    """Human-readable name of what the backend computes on (GPU names, else the CPU model)."""
    return runtime.device_description()


def make_dataset(x: np.ndarray, targets, batch_size: int, shuffle: bool, seed: int = 0, views=None):
    """Batched training input; images stay 32x32 (upsampling happens inside the model): tf.data on TensorFlow,
    a keras.utils.PyDataset of NumPy batches elsewhere (kdbench.runtime.make_dataset).

    views: a kdbench.augment.EpochViews (pass it to fit as a callback too): each image is replaced by its view
    of the current epoch, and its per-epoch targets (e.g. cached teacher logits) join `targets`, by image index,
    carried through the shuffle. Without it, the images as they are.
    """
    return runtime.make_dataset(x, targets, batch_size, shuffle, seed, views)


class EpochTimer(keras.callbacks.Callback):
    """Logs progress, adds `epoch_seconds` (so training time survives restarts) and stops on a NaN loss."""

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()
        print(f"epoch {epoch + 1}/{self.params['epochs']} started", flush=True)

    def on_epoch_end(self, epoch, logs=None):
        logs["epoch_seconds"] = time.perf_counter() - self.start

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise KdbenchError(f"training loss became {loss} at batch {batch}; lower the learning "
                               "rate or check the input data")


def _duration(seconds: float) -> str:
    """12.3 -> '12s', 137 -> '2m17s', 4000 -> '1h06m'."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def dataset_batch_size(dataset) -> int | None:
    """The batch size of a pipeline built by make_dataset (None where it cannot be read)."""
    return runtime.dataset_batch_size(dataset)


class ProgressLogger(keras.callbacks.Callback):
    """One plain line every `every_seconds` (and/or `every_batches`) inside an epoch: an epoch at the seed's
    256 px takes minutes on a CPU, and Keras's verbose=2 prints only at its end. No carriage returns,
    so the lines read the same in a log file as on a terminal.

    Rates and the ETA leave out the epoch's first batch (it includes tracing the step). images/s counts
    full batches of `batch_size` (the last, smaller batch of an epoch is counted as full); without a
    batch size the line gives batches/s instead.
    """

    def __init__(self, every_seconds: float | None = 30.0, every_batches: int | None = None,
                 batch_size: int | None = None, device: str | None = None, clock=time.perf_counter):
        super().__init__()
        self.every_seconds, self.every_batches = every_seconds, every_batches
        self.batch_size, self.device, self.clock = batch_size, device, clock

    def on_train_begin(self, logs=None):
        if self.device:
            print(f"training on {self.device}", flush=True)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self.first_done = None  # (time, batches) once the first batch has finished
        self.last_line = self.clock()

    def on_train_batch_end(self, batch, logs=None):
        now, done = self.clock(), batch + 1
        if self.first_done is None:
            self.first_done = (now, done)
        due = ((self.every_batches and done % self.every_batches == 0)
               or (self.every_seconds is not None and now - self.last_line >= self.every_seconds))
        if not due:
            return
        self.last_line = now
        steps = self.params.get("steps")
        parts = [f"epoch {self.epoch + 1}/{self.params.get('epochs', '?')}",
                 f"batch {done}/{steps}" if steps else f"batch {done}"]
        start, start_batches = self.first_done
        if done > start_batches and now > start:
            per_second = (done - start_batches) / (now - start)
            parts.append(f"{per_second * self.batch_size:.1f} images/s" if self.batch_size
                         else f"{per_second:.2f} batches/s")
            if steps:
                parts.append(f"epoch ETA {_duration((steps - done) / per_second)}")
        loss = (logs or {}).get("loss")
        if loss is not None:
            parts.append(f"loss {float(loss):.4f}")
        print(", ".join(parts), flush=True)


def tensorboard_callback(log_dir: str | Path) -> keras.callbacks.Callback:
    """Keras's TensorBoard logs (per epoch); TensorFlow 2.21 no longer installs the package that writes them."""
    if importlib.util.find_spec("tensorboard") is None:
        raise KdbenchError("TensorBoard logs need the tensorboard package: pip install -e '.[tensorboard]' "
                           "(or turn the TensorBoard option off)")
    return keras.callbacks.TensorBoard(str(log_dir))


@contextlib.contextmanager
def deferred_signals(signums=(signal.SIGTERM, signal.SIGINT)):
    """Hold SIGTERM/SIGINT back while the block runs, then deliver them: a stop never cuts a save in half."""
    received = []
    previous = {signum: signal.signal(signum, lambda number, frame: received.append(number)) for signum in signums}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in received[:1]:
            signal.raise_signal(signum)


class _BackupAndRestore(keras.callbacks.BackupAndRestore):
    """Keras's BackupAndRestore with its end-of-epoch save shielded from SIGTERM/Ctrl-C."""

    def on_epoch_end(self, epoch, logs=None):
        with deferred_signals():
            super().on_epoch_end(epoch, logs)


def _unreadable_resume_state(resume_dir: Path) -> str | None:
    """Why the backup in `resume_dir` cannot be resumed from (empty, truncated, inconsistent), else None."""
    import h5py

    backup = resume_dir / "backup"
    try:
        epoch = json.loads((backup / "training_metadata.json").read_text())["epoch"]
        if not isinstance(epoch, int) or epoch < 1:
            return f"backup/training_metadata.json records epoch {epoch!r}"
        h5py.File(backup / "latest.weights.h5", "r").close()  # HDF5 refuses an empty or cut-off file here
        epochs = pd.read_csv(resume_dir / "history.csv")["epoch"]
        if not set(range(epoch)) <= set(epochs):
            return f"history.csv lacks rows for epochs the backup has finished (up to {epoch})"
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as err:  # pandas' errors are ValueErrors
        return f"it cannot be read ({type(err).__name__}: {err})"
    return None


def fit_resumable(model, train_ds, epochs: int, resume_dir: str | Path, run_key: dict | None = None,
                  verbose: int = 2, extra_callbacks=(), tensorboard_dir: str | Path | None = None):
    """model.fit with state in `resume_dir`: a killed or stopped run restarts from its last finished epoch.

    `resume_dir` must not be a declared Snakemake output (Snakemake deletes those when a job fails).
    State saved under a different `run_key` (other flags or inputs) is discarded, never continued.
    tensorboard_dir: also write TensorBoard logs there (off by default).
    Returns the per-epoch history as a pandas DataFrame.
    """
    resume_dir = Path(resume_dir)
    history_path, key_path = resume_dir / "history.csv", resume_dir / "run.json"
    run_key = json.loads(json.dumps(run_key or {}, default=str))  # as it reads back from the file
    if (resume_dir / "backup").exists():
        try:  # state cut off by a full disk or a kill is discarded, not tripped over on every rerun
            saved_key = json.loads(key_path.read_text())
            problem = None if saved_key == run_key else "it was saved by a run with other flags or inputs"
            problem = problem or _unreadable_resume_state(resume_dir)
        except (OSError, ValueError) as err:
            problem = f"{key_path.name} cannot be read ({err})"
        if problem is None:
            print(f"resuming from the last finished epoch saved in {resume_dir}", flush=True)
        else:
            print(f"discarding the resume state in {resume_dir}: {problem}; starting over", flush=True)
            shutil.rmtree(resume_dir)
    if not (resume_dir / "backup").exists():
        resume_dir.mkdir(parents=True, exist_ok=True)
        history_path.unlink(missing_ok=True)
        write_json(key_path, run_key)
    callbacks = [  # the history row of an epoch is written before its backup: a rerun never misses a row
        *([_DatasetEpoch(train_ds)] if hasattr(train_ds, "set_epoch") else []),  # before the epoch's batches
        EpochTimer(),  # first: epoch_seconds is training time only
        ProgressLogger(batch_size=dataset_batch_size(train_ds), device=device_description()),
        *extra_callbacks,  # before CSVLogger, so that what they add to an epoch's logs is written
        keras.callbacks.CSVLogger(str(history_path), append=True),
        _BackupAndRestore(str(resume_dir / "backup"), double_checkpoint=True),
    ] + ([tensorboard_callback(tensorboard_dir)] if tensorboard_dir else [])
    if not model.built:  # BackupAndRestore needs built weights to restore into
        model(next(iter(train_ds))[0])
    model.fit(train_ds, epochs=epochs, callbacks=callbacks, verbose=verbose, shuffle=False)
    history = pd.read_csv(history_path).drop_duplicates("epoch", keep="last").reset_index(drop=True)
    history["epoch"] = history["epoch"] + 1
    return history


class _DatasetEpoch(keras.callbacks.Callback):
    """Tells a NumPy pipeline (kdbench.runtime's PyDataset) the epoch it serves: its shuffle order is drawn from
    (seed, epoch), so a resumed run sees the order an uninterrupted one would have."""

    def __init__(self, dataset):
        super().__init__()
        self.dataset = dataset

    def on_epoch_begin(self, epoch, logs=None):
        self.dataset.set_epoch(epoch)


def save_training_outputs(model, history, model_path: str | Path, history_path: str | Path,
                          info_path: str | Path, info: dict, resume_dir: str | Path) -> None:
    """Write checkpoint, history and run info atomically, then drop the resume state."""
    with atomic_path(model_path) as tmp:
        model.save(tmp)
    with atomic_path(history_path) as tmp:
        history.to_csv(tmp, index=False)
    info = {**info, "params": int(model.count_params()), "epochs_run": int(len(history)),
            # time spent before the epochs (e.g. computing cached features) is part of training
            "train_seconds": float(history["epoch_seconds"].sum()) + float(info.get("feature_seconds", 0.0)),
            "device": device_description(), "backend": runtime.name(), "versions": runtime.versions()}
    write_json(info_path, info)
    shutil.rmtree(resume_dir, ignore_errors=True)


class ValidationMetrics(keras.callbacks.Callback):
    """Adds `predictor`'s accuracy and cross-entropy on held-out images to every epoch's logs (val_accuracy,
    val_loss): the per-epoch validation curve, for any model, without touching how it trains. prefix "test"
    scores the test images instead (test_accuracy, test_loss: the papers' best-test-epoch protocol, reported
    beside the honest one, never used for any choice)."""

    def __init__(self, predictor: keras.Model, x: np.ndarray, y: np.ndarray, batch_size: int = 256,
                 prefix: str = "val"):
        super().__init__()
        self.predictor, self.x, self.y, self.batch_size = predictor, x, np.asarray(y), batch_size
        self.prefix = prefix

    def on_epoch_end(self, epoch, logs=None):
        from scipy.special import log_softmax

        with averaged_weights(self.model):  # with EMA, the averaged weights are what is evaluated and saved
            logits = np.asarray(self.predictor.predict(self.x, batch_size=self.batch_size, verbose=0), np.float64)
        logs[f"{self.prefix}_accuracy"] = float((logits.argmax(axis=1) == self.y).mean())
        logs[f"{self.prefix}_loss"] = float(-log_softmax(logits, axis=1)[np.arange(len(self.y)), self.y].mean())


@contextlib.contextmanager
def averaged_weights(model):
    """Inside the block, `model`'s trainable weights are its optimizer's moving averages (Keras's use_ema), the
    weights that are evaluated and saved; after it, the live weights training continues from. Without EMA (or
    before the optimizer's first step), nothing changes.

    Keras writes the averages into the model only at the end of fit (optimizer.finalize_variable_values), and
    its SwapEMAWeights(swap_on_epoch=True) would leave them in the model while BackupAndRestore saves the
    epoch, so a resumed run would continue from the averages with the live weights as its average.
    """
    optimizer = getattr(model, "optimizer", None)
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)  # LossScaleOptimizer under mixed_float16
    if not (getattr(optimizer, "use_ema", False) and getattr(optimizer, "built", False)):
        yield
        return
    pairs = [(variable, average) for variable, average in
             zip(optimizer._trainable_variables, optimizer._model_variables_moving_average) if average is not None]
    live = [keras.ops.convert_to_numpy(variable) for variable, _ in pairs]
    for variable, average in pairs:
        # a copy: on JAX, assign() would share the average's buffer with the variable, and the next predict or
        # train step donates (deletes) the variable's buffer, the average's with it
        variable.assign(keras.ops.convert_to_numpy(average))
    try:
        yield
    finally:
        for (variable, _), value in zip(pairs, live):
            variable.assign(value)


class BestEpoch(keras.callbacks.Callback):
    """Keeps `predictor`'s weights from the epoch with the best val_accuracy (the first of ties), as evaluated
    (the averaged weights with EMA), in `folder`; restore() loads them back after fit.

    Place it after ValidationMetrics. It survives a resumed run: the kept epoch is recorded in best.json beside
    its weights file; an epoch recorded by a run killed before BackupAndRestore saved that epoch is dropped when
    the resumed run trains it again, and the best of the epochs before it is kept until then.
    """

    def __init__(self, predictor: keras.Model, folder: str | Path):
        super().__init__()
        self.predictor, self.folder = predictor, Path(folder)

    def _records(self) -> list[dict]:
        path = self.folder / "best.json"
        return json.loads(path.read_text()) if path.exists() else []

    def _write(self, records: list[dict]) -> None:
        write_json(self.folder / "best.json", records)
        for file in self.folder.glob("*.weights.h5"):  # only after best.json stops naming them
            if file.name not in {record["file"] for record in records}:
                file.unlink()

    def on_epoch_begin(self, epoch, logs=None):
        # epochs 1..epoch are finished and backed up: the last record among them is the best, the rest can go
        records = [record for record in self._records() if record["epoch"] <= epoch]
        if self.folder.exists():
            self._write(records[-1:])

    def on_epoch_end(self, epoch, logs=None):
        accuracy = (logs or {}).get("val_accuracy")
        if accuracy is None:
            raise KdbenchError("the best-epoch checkpoint needs the validation accuracy of every epoch: give the "
                               "data a validation split (data.val_size > 0) or use train.checkpoint: last")
        records = self._records()
        if records and accuracy <= records[-1]["val_accuracy"]:
            return
        file = f"epoch-{epoch + 1}.weights.h5"
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f"tmp-{os.getpid()}.weights.h5"  # Keras insists on the .weights.h5 ending
        with averaged_weights(self.model):
            self.predictor.save_weights(tmp)
        os.replace(tmp, self.folder / file)
        self._write([*records, {"epoch": epoch + 1, "val_accuracy": float(accuracy), "file": file}])

    def restore(self) -> dict:
        """Load the kept epoch's weights into the predictor; returns {"kept_epoch", "kept_val_accuracy"}."""
        records = self._records()
        if not records:
            raise KdbenchError(f"no kept epoch in {self.folder}: the run trained no epoch with a validation score")
        self.predictor.load_weights(self.folder / records[-1]["file"])
        return {"kept_epoch": records[-1]["epoch"], "kept_val_accuracy": records[-1]["val_accuracy"]}
