"""The training recipe: optimizer and schedule, EMA weights, the best-epoch checkpoint, and augmentation whose
per-epoch views (and the teacher's cached targets on them) are a pure function of (seed, epoch, image)."""

import argparse
import json
import math

import keras
import numpy as np
import pytest
import yaml
from conftest import ROOT, run_script

from kdbench import KdbenchError, augment, cli, config, distill, recipe, teacher, train
from kdbench.datasets import get, make_synthetic, save_dataset


def _images(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 32, 32, 3)).astype("float32"), np.arange(n) % 3


def _tiny_model(classes=3, name="tiny"):
    return keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Rescaling(1 / 255), keras.layers.Flatten(),
                             keras.layers.Dense(classes)], name=name)


def _compile(model, **recipe_options):
    model.compile(optimizer=recipe.optimizer(**{"name": "adam", "base_learning_rate": 1e-2, "steps_per_epoch": 2,
                                                "epochs": 3, **recipe_options}),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _weights(model):
    return [keras.ops.convert_to_numpy(w).copy() for w in model.trainable_weights]


# --- optimizer and schedule ---------------------------------------------------------------------------------

def _training_args(*flags):
    parser = argparse.ArgumentParser()
    cli.add_training_args(parser)
    return parser.parse_args(["--data", "d.npz", "--epochs", "3", "--resume-dir", "r", "--model-out", "m.keras",
                              "--history-out", "h.csv", "--info-out", "i.json", *flags])


def test_default_flags_build_the_reference_adam():
    args = _training_args()
    built = recipe.from_args(args, num_images=100)
    reference = keras.optimizers.Adam(1e-3)
    assert type(built) is keras.optimizers.Adam
    unnamed = [{**o.get_config(), "name": None} for o in (built, reference)]  # Keras numbers the names
    assert unnamed[0] == unnamed[1]  # constant 1e-3, no EMA, no weight decay
    assert (args.schedule, args.checkpoint, args.ema) == ("constant", "last", None)


def test_sgd_is_nesterov_with_weight_decay_and_ema():
    built = recipe.from_args(_training_args("--optimizer", "sgd", "--momentum", "0.8", "--weight-decay", "1e-3",
                                            "--ema", "0.99", "--learning-rate", "0.05"), num_images=100)
    assert type(built) is keras.optimizers.SGD
    assert built.nesterov and built.momentum == 0.8 and built.weight_decay == pytest.approx(1e-3)
    assert built.use_ema and built.ema_momentum == pytest.approx(0.99)
    assert float(built.learning_rate) == pytest.approx(0.05)
    assert not keras.optimizers.Adam(1e-3).use_ema
    assert recipe.optimizer("adam", 1e-3, steps_per_epoch=1, epochs=1, weight_decay=0.1).weight_decay is None


def test_cosine_schedule_warms_up_linearly_then_follows_the_cosine():
    base, steps, epochs = 0.1, 10, 4  # 40 steps: 10 of warm-up, then 30 of decay
    optimizer = recipe.optimizer("sgd", base, steps_per_epoch=steps, epochs=epochs, schedule="cosine",
                                 warmup_epochs=1)

    def rate_at(step):
        optimizer.iterations.assign(step)
        return float(optimizer.learning_rate)

    assert rate_at(0) == 0.0  # warm-up starts at 0
    assert rate_at(5) == pytest.approx(base * 5 / 10)
    assert rate_at(10) == pytest.approx(base)  # end of warm-up: the peak
    for step in (17, 25, 39):
        assert rate_at(step) == pytest.approx(base * 0.5 * (1 + math.cos(math.pi * (step - 10) / 30)), abs=1e-7)
    assert rate_at(40) == pytest.approx(0.0, abs=1e-9)  # end of the run
    no_warmup = recipe.learning_rate(base, "cosine", steps, epochs, warmup_epochs=0)
    assert float(no_warmup(0)) == pytest.approx(base)
    assert float(no_warmup(20)) == pytest.approx(base * 0.5, abs=1e-7)
    with pytest.raises(ValueError, match="no epoch to decay"):
        recipe.learning_rate(base, "cosine", steps, epochs, warmup_epochs=4)


def _torch_sgd_by_hand(w, gradients, rates, momentum, weight_decay, nesterov=False):
    """torch.optim.SGD's documented update (dampening 0), in NumPy: the reference the Keras port must match."""
    w, buffer = np.array(w, np.float64), None
    for g, lr in zip(gradients, rates):
        g = g + weight_decay * w
        buffer = g.copy() if buffer is None else momentum * buffer + g
        w = w - lr * (g + momentum * buffer if nesterov else buffer)
    return w


@pytest.mark.parametrize("nesterov", [False, True])
def test_l2_weight_decay_is_pytorchs_sgd_step_for_step(nesterov):
    rng = np.random.default_rng(0)
    start = rng.normal(size=(4, 3))
    gradients = [rng.normal(size=(4, 3)) for _ in range(7)]
    # 2 steps per epoch, milestones at epochs 1 and 2: the rate drops after steps 2 and 4 (as the buffer is full)
    optimizer = recipe.optimizer("sgd", 0.5, steps_per_epoch=2, epochs=4, schedule="multistep", momentum=0.9,
                                 weight_decay=0.05, weight_decay_mode="l2", nesterov=nesterov, milestones=[1, 2],
                                 decay=0.1)
    variable = keras.Variable(start.astype("float32"))
    for step, g in enumerate(gradients, start=1):
        optimizer.apply_gradients([(keras.ops.convert_to_tensor(g.astype("float32")), variable)])
        rates = [0.5, 0.5, 0.05, 0.05, 0.005, 0.005, 0.005][:step]
        expected = _torch_sgd_by_hand(start, gradients[:step], rates, 0.9, 0.05, nesterov)
        np.testing.assert_allclose(variable.numpy(), expected, rtol=1e-5, atol=1e-6)
    # Keras's decoupled decay is another update: the same flags in the default mode land elsewhere
    decoupled = recipe.optimizer("sgd", 0.5, steps_per_epoch=2, epochs=4, schedule="multistep", momentum=0.9,
                                 weight_decay=0.05, nesterov=nesterov, milestones=[1, 2], decay=0.1)
    other = keras.Variable(start.astype("float32"))
    for g in gradients:
        decoupled.apply_gradients([(keras.ops.convert_to_tensor(g.astype("float32")), other)])
    assert type(decoupled) is keras.optimizers.SGD and decoupled.nesterov is nesterov
    assert not np.allclose(other.numpy(), variable.numpy(), atol=1e-3)


def test_l2_weight_decay_without_momentum_is_plain_gradient_descent_on_the_l2_loss():
    start, g = np.array([1.0, -2.0, 3.0]), np.array([0.5, 0.5, -1.0])
    optimizer = recipe.optimizer("sgd", 0.1, steps_per_epoch=1, epochs=1, momentum=0.0, weight_decay=0.01,
                                 weight_decay_mode="l2", nesterov=False)
    variable = keras.Variable(start.astype("float32"))
    optimizer.apply_gradients([(keras.ops.convert_to_tensor(g.astype("float32")), variable)])
    np.testing.assert_allclose(variable.numpy(), start - 0.1 * (g + 0.01 * start), rtol=1e-6)


def test_multistep_learning_rate_at_and_around_each_milestone():
    base, steps, milestones = 0.05, 10, [150, 180, 210]
    optimizer = recipe.optimizer("sgd", base, steps_per_epoch=steps, epochs=240, schedule="multistep",
                                 milestones=milestones, decay=0.1, weight_decay_mode="l2", nesterov=False)

    def rate_at(step):
        optimizer.iterations.assign(step)
        return float(optimizer.learning_rate)

    def by_hand(step):  # MultiStepLR: epoch e (0-based) trains at base x 0.1^(milestones <= e)
        return base * 0.1 ** sum(step // steps >= m for m in milestones)

    for milestone in milestones:
        for step in (milestone * steps - 1, milestone * steps, milestone * steps + 1):
            assert rate_at(step) == pytest.approx(by_hand(step), rel=1e-6), step
    assert rate_at(0) == pytest.approx(base)
    assert rate_at(1499) == pytest.approx(base) and rate_at(1500) == pytest.approx(base * 0.1, rel=1e-6)
    assert rate_at(2399) == pytest.approx(base * 1e-3, rel=1e-5)
    for bad, message in (([], "increasing milestone"), ([180, 150], "increasing milestone"),
                         ([150, 240], "not inside a run of 240")):
        with pytest.raises(ValueError, match=message):
            recipe.learning_rate(base, "multistep", steps, 240, milestones=bad)


def test_pytorch_recipe_flags_reach_the_optimizer_and_it_saves_and_loads(tmp_path):
    args = _training_args("--optimizer", "sgd", "--schedule", "multistep", "--lr-milestones", "1,2",
                          "--lr-decay", "0.2", "--weight-decay-mode", "l2", "--no-nesterov", "--learning-rate", "0.1")
    built = recipe.from_args(args, num_images=8)
    assert type(built) is recipe.TorchSGD and not built.nesterov and built.l2 == pytest.approx(5e-4)
    assert cli.training_info(args)["lr_milestones"] == [1, 2] and cli.training_info(args)["weight_decay_mode"] == "l2"
    x, y = _images()
    model = _tiny_model()
    model.compile(optimizer=built, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=4, epochs=3, verbose=0)  # 2 steps per epoch: the rate 0.1, 0.02, 0.004
    assert float(built.learning_rate) == pytest.approx(0.004, rel=1e-5)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert type(loaded.optimizer) is recipe.TorchSGD and loaded.optimizer.l2 == pytest.approx(5e-4)
    assert float(loaded.optimizer.learning_rate) == pytest.approx(0.004, rel=1e-5)
    with pytest.raises(SystemExit):
        _training_args("--lr-milestones", "180,150")


def test_recipe_config_errors_name_the_key_and_the_fix():
    base = yaml.safe_load((ROOT / "config.yaml").read_text())
    schema = ROOT / "schemas" / "config.schema.yaml"

    def errors(train=None, students=None, data=None):
        merged = json.loads(json.dumps(base))
        merged["train"].update(train or {})
        merged["data"].update(data or {})
        if students:
            merged["students"]["resnet18"].update(students)
        return " | ".join(config.config_errors(merged, schema))

    assert errors() == ""
    assert errors({"augment": True}) == ""  # cached soft targets and augmentation now go together
    assert "students.resnet18.augment: moved to train.augment" in errors(students={"augment": True})
    assert "train.ema: True is not allowed" in errors({"ema": True})
    assert "train.ema: 1.5 is not allowed" in errors({"ema": 1.5})
    assert errors({"ema": 0.99}) == ""
    assert "train.warmup_epochs: 5 leaves no epoch" in errors({"schedule": "cosine", "warmup_epochs": 5})
    assert "data.val_size > 0" in errors({"checkpoint": "best"}, data={"val_size": 0})
    assert "train.optimizer" in errors({"optimizer": "rmsprop"})
    assert errors({"schedule": "multistep", "lr_milestones": [2, 4]}) == ""
    assert "needs at least one milestone" in errors({"schedule": "multistep"})
    assert "must be increasing" in errors({"schedule": "multistep", "lr_milestones": [4, 2]})
    assert "train.lr_milestones: epoch 5 is not inside a run of 5" in errors({"schedule": "multistep",
                                                                              "lr_milestones": [5]})
    assert "train.weight_decay_mode" in errors({"weight_decay_mode": "adamw"})


# --- EMA ------------------------------------------------------------------------------------------------------

class _Record(keras.callbacks.Callback):
    """Live and averaged weights at every epoch's end (and the live weights at every epoch's start)."""

    def __init__(self):
        super().__init__()
        self.live, self.average, self.start = {}, {}, {}

    def on_epoch_begin(self, epoch, logs=None):
        if self.model.optimizer.built:
            self.start[epoch] = (_weights(self.model),
                                 [keras.ops.convert_to_numpy(a).copy() for a in self.model.optimizer._model_variables_moving_average])

    def on_epoch_end(self, epoch, logs=None):
        self.live[epoch] = _weights(self.model)
        self.average[epoch] = [keras.ops.convert_to_numpy(a).copy() for a in self.model.optimizer._model_variables_moving_average]


def test_ema_weights_are_validated_every_epoch_and_saved(tmp_path):
    x, y = _images()
    keras.utils.set_random_seed(0)
    model = _compile(_tiny_model(), ema=0.5)
    record = _Record()
    scorer = train.ValidationMetrics(model, x, y)
    history = train.fit_resumable(model, train.make_dataset(x, y, 4, shuffle=True), 3, tmp_path / "resume",
                                  verbose=0, extra_callbacks=[record, scorer])
    assert not all(np.allclose(a, b) for a, b in zip(record.live[2], record.average[2]))  # EMA differs
    for got, average in zip(_weights(model), record.average[2]):  # Keras wrote the averages in at the end of fit
        np.testing.assert_array_equal(got, average)
    logits = model.predict(x, verbose=0).astype(np.float64)  # now with the averaged weights
    loss = -(logits[np.arange(len(y)), y] - np.log(np.exp(logits).sum(axis=1))).mean()
    assert history["val_loss"].iloc[-1] == pytest.approx(loss, rel=1e-5)  # the last epoch was scored with them
    train.save_training_outputs(model, history, tmp_path / "m.keras", tmp_path / "h.csv", tmp_path / "i.json", {},
                                tmp_path / "resume")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    for got, average in zip(_weights(loaded), record.average[2]):
        np.testing.assert_array_equal(got, average)


def test_validation_with_ema_leaves_the_live_weights_and_resumes_with_both(tmp_path):
    x, y = _images()
    keras.utils.set_random_seed(0)
    first, record = _compile(_tiny_model(), ema=0.5), _Record()
    train.fit_resumable(first, train.make_dataset(x, y, 4, shuffle=False), 1, tmp_path / "resume", verbose=0,
                        extra_callbacks=[record, train.ValidationMetrics(first, x, y)])
    live_after_1 = record.live[0]
    keras.utils.set_random_seed(0)
    resumed, probe = _compile(_tiny_model(), ema=0.5), _Record()
    train.fit_resumable(resumed, train.make_dataset(x, y, 4, shuffle=False), 2, tmp_path / "resume", verbose=0,
                        extra_callbacks=[train.ValidationMetrics(resumed, x, y), probe])
    start_live, start_average = probe.start[1]
    for got, expected in zip(start_live, live_after_1):  # training continues from the live weights...
        np.testing.assert_array_equal(got, expected)
    for got, expected in zip(start_average, record.average[0]):  # ...and the average is the one saved
        np.testing.assert_array_equal(got, expected)


# --- best-epoch checkpoint ------------------------------------------------------------------------------------

class _Scores(keras.callbacks.Callback):
    """Stands in for ValidationMetrics: val_accuracy from a list; records the weights; can fail an epoch's end."""

    def __init__(self, scores, fail_at=None):
        super().__init__()
        self.scores, self.fail_at, self.weights = scores, fail_at, {}

    def on_epoch_end(self, epoch, logs=None):
        logs["val_accuracy"] = self.scores[epoch]
        self.weights[epoch + 1] = [w.numpy().copy() for w in self.model.weights[:2]]


class _Kill(keras.callbacks.Callback):
    def __init__(self, at):
        super().__init__()
        self.at = at

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.at:
            raise KeyboardInterrupt("killed after the epoch's best checkpoint, before its backup")


def _fit_best(tmp_path, scores, epochs, kill_at=None):
    x, y = _images()
    keras.utils.set_random_seed(0)
    model = _compile(_tiny_model())
    scored, best = _Scores(scores), train.BestEpoch(model, tmp_path / "resume" / "best")
    callbacks = [scored, best, *([_Kill(kill_at)] if kill_at else [])]
    try:
        train.fit_resumable(model, train.make_dataset(x, y, 4, shuffle=False), epochs, tmp_path / "resume",
                            verbose=0, extra_callbacks=callbacks)
    except KeyboardInterrupt:
        return model, scored, None
    return model, scored, best.restore()


def test_best_checkpoint_keeps_the_best_epochs_weights(tmp_path):
    model, scored, kept = _fit_best(tmp_path, [0.2, 0.9, 0.5, 0.9], 4)
    assert kept == {"kept_epoch": 2, "kept_val_accuracy": 0.9}  # ties keep the earlier epoch
    for got, expected in zip(model.weights[:2], scored.weights[2]):
        np.testing.assert_array_equal(got.numpy(), expected)
    assert not np.allclose(scored.weights[2][0], scored.weights[4][0])
    assert sorted(p.name for p in (tmp_path / "resume" / "best").iterdir()) == ["best.json", "epoch-2.weights.h5"]


def test_best_checkpoint_survives_a_kill_between_its_save_and_the_backup(tmp_path):
    _, first, _ = _fit_best(tmp_path, [0.2, 0.9, 0.95], 3, kill_at=3)  # epoch 3 recorded, never backed up
    assert json.loads((tmp_path / "resume" / "best" / "best.json").read_text())[-1]["epoch"] == 3
    model, second, kept = _fit_best(tmp_path, [0.2, 0.9, 0.3], 3)  # resumes at epoch 3, which now scores 0.3
    assert sorted(second.weights) == [3]  # only epoch 3 ran again
    assert kept == {"kept_epoch": 2, "kept_val_accuracy": 0.9}
    for got, expected in zip(model.weights[:2], first.weights[2]):
        np.testing.assert_array_equal(got.numpy(), expected)


# --- augmentation and cached per-epoch targets -----------------------------------------------------------------

def _seen_views(x, seed, epoch):
    return np.concatenate([np.asarray(batch) for batch in augment.epoch_views(x, seed, epoch, batch_size=3)])


def test_views_are_a_pure_function_of_seed_epoch_and_index():
    x, _ = _images()
    views = {}
    for run_seed in (0, 1):  # the run's seed shuffles differently; the views stay
        keras.utils.set_random_seed(run_seed + 10)
        epoch_views = augment.EpochViews(seed=7)
        ds = train.make_dataset(x, np.arange(len(x)), 3, shuffle=True, seed=run_seed, views=epoch_views)
        for epoch in (0, 1):
            epoch_views.on_epoch_begin(epoch)
            pairs = [(int(i), image) for images, index in ds
                     for image, i in zip(keras.ops.convert_to_numpy(images), keras.ops.convert_to_numpy(index))]
            views[run_seed, epoch] = dict(pairs)
            order = [i for i, _ in pairs]
            assert sorted(order) == list(range(len(x)))
    for epoch in (0, 1):
        reference = _seen_views(x, 7, epoch)
        for i in range(len(x)):
            np.testing.assert_array_equal(views[0, epoch][i], reference[i])
            np.testing.assert_array_equal(views[1, epoch][i], reference[i])
            np.testing.assert_array_equal(augment.view(x[i], 7, epoch, i), reference[i])
    assert not np.array_equal(_seen_views(x, 7, 0), _seen_views(x, 7, 1))  # a new view every epoch
    assert not np.array_equal(_seen_views(x, 7, 0), _seen_views(x, 8, 0))  # and per augmentation seed
    view = _seen_views(x, 7, 0)[0]
    shifted = [np.array_equal(view[max(dy, 0):32 + min(dy, 0), max(dx, 0):32 + min(dx, 0)],
                              image[max(-dy, 0):32 + min(-dy, 0), max(-dx, 0):32 + min(-dx, 0)])
               for image in (x[0], x[0][:, ::-1]) for dy in range(-4, 5) for dx in range(-4, 5)]
    assert sum(shifted) == 1  # a padded crop of the image or its mirror image, shifted by at most 4 px


class _Probe(keras.Model):
    """Records every training batch (eagerly): the images and targets a pipeline really delivers to fit."""

    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(3)
        self.batches = []

    def call(self, x):
        return self.dense(keras.ops.reshape(x, (-1, 32 * 32 * 3)) / 255.0)

    def train_step(self, data):
        images, targets = data
        self.batches.append((images.numpy(), {k: v.numpy() for k, v in targets.items()}))
        return {"loss": 0.0}


def test_a_resumed_run_pairs_each_epochs_views_with_that_epochs_targets(tmp_path):
    x, y = _images()
    epochs, seed = 3, 5
    cached = np.random.default_rng(1).normal(size=(epochs, len(x), 3)).astype("float32")

    def fit(until, kill_at=None):
        views = augment.EpochViews(seed, {"teacher_logits": cached})
        model = _Probe()
        model.compile(optimizer="sgd", run_eagerly=True)
        callbacks = [views, *([_Kill(kill_at)] if kill_at else [])]
        try:
            train.fit_resumable(model, train.make_dataset(x, {"label": y}, 4, shuffle=True, seed=0, views=views),
                                until, tmp_path / "resume", verbose=0, extra_callbacks=callbacks)
        except KeyboardInterrupt:
            pass
        return model.batches

    first = fit(epochs, kill_at=2)  # epochs 1 and 2 run; the kill lands before epoch 2's backup
    resumed = fit(epochs)  # so the resumed run trains epochs 2 and 3
    assert len(first) == 4 and len(resumed) == 4
    for epoch, batches in ((0, first[:2]), (1, first[2:]), (1, resumed[:2]), (2, resumed[2:])):
        reference = _seen_views(x, seed, epoch)
        seen = 0
        for images, targets in batches:
            for image, label, logits in zip(images, targets["label"], targets["teacher_logits"]):
                index = int(np.flatnonzero((cached[epoch] == logits).all(axis=1))[0])
                np.testing.assert_array_equal(image, reference[index])
                assert label == y[index]
                seen += 1
        assert seen == len(x)


def test_cached_targets_cover_the_run_or_the_run_stops():
    views = augment.EpochViews(0, {"teacher_logits": np.zeros((2, 4, 3), np.float32)})
    views.on_epoch_begin(1)
    with pytest.raises(KdbenchError, match="cover 2 epochs"):
        views.on_epoch_begin(2)


def test_cached_per_epoch_targets_train_as_the_online_teacher_does(tmp_path):
    x, y = _images(12)
    epochs, seed = 2, 3
    data = tmp_path / "data.npz"
    arrays = make_synthetic(12, 4, seed=0)
    arrays["x_train"], arrays["y_train"] = x.astype(np.uint8), y
    save_dataset(data, arrays, get("cifar10").class_names)
    keras.utils.set_random_seed(1)
    teacher = _tiny_model(10, name="teacher")
    teacher.save(tmp_path / "teacher.keras")
    result = run_script("teacher_logits.py", "--data", data, "--model", tmp_path / "teacher.keras", "--augment",
                        "--augment-seed", seed, "--epochs", epochs, "--out", tmp_path / "logits.npy")
    assert result.returncode == 0, result.stderr[-2000:]
    cached = distill.load_teacher_logits(tmp_path / "logits.npy", 12, 10, epochs=epochs)
    with pytest.raises(KdbenchError, match="unaugmented images"):
        distill.load_teacher_logits(tmp_path / "logits.npy", 12, 10)

    def distil(teacher_model, epoch_targets):
        keras.utils.set_random_seed(0)
        student = _tiny_model(10, name="student")
        views = augment.EpochViews(seed, epoch_targets)
        model = distill.Distiller(student, "kd", {"alpha": 0.3, "temperature": 4.0}, teacher=teacher_model)
        model.compile(optimizer=keras.optimizers.SGD(0.1))
        ds = train.make_dataset(x, {"label": y}, 4, shuffle=True, seed=0, views=views)
        model.fit(ds, epochs=epochs, callbacks=[views], verbose=0)
        return _weights(student)

    online = distil(keras.models.load_model(tmp_path / "teacher.keras"), {})
    offline = distil(None, {"teacher_logits": cached})
    for a, b in zip(online, offline):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    other_views = distil(None, {"teacher_logits": np.roll(cached, 1, axis=0)})  # epoch 2's targets in epoch 1
    assert not all(np.allclose(a, b, rtol=1e-5, atol=1e-6) for a, b in zip(online, other_views))


class _ImageProbe(_Probe):
    """_Probe for plain label targets: records the images of every batch, trains nothing."""

    def train_step(self, data):
        images, _ = data
        self.batches.append(images.numpy())
        return {"loss": 0.0}


def test_an_augmenting_teacher_trains_on_the_students_views_and_scores_the_test_images_per_epoch(tmp_path):
    x, y = _images()
    probe = _ImageProbe()
    probe.compile(optimizer="sgd", run_eagerly=True)
    probe.compile = lambda **kwargs: None  # fit_teacher compiles; the probe keeps its eager step
    history, _, kept = teacher.fit_teacher(probe, "unused", x, y, learning_rate=0.1, batch_size=4, epochs=2, seed=0,
                                           resume_dir=tmp_path / "resume", cache_features=False,
                                           views=augment.EpochViews(3), test=(x[:6], y[:6]))
    assert kept == {"kept_epoch": 2} and len(probe.batches) == 4
    for epoch in (0, 1):
        seen = np.concatenate(probe.batches[2 * epoch:2 * epoch + 2])
        reference = _seen_views(x, 3, epoch)
        assert sorted(int(np.flatnonzero([np.array_equal(v, r) for r in reference])[0]) for v in seen) == list(
            range(len(x)))  # every image once, each as its view of that epoch
    assert {"test_accuracy", "test_loss"} <= set(history.columns) and "val_accuracy" not in history
    logits = probe.predict(x[:6], verbose=0)
    assert history["test_accuracy"].iloc[-1] == pytest.approx(float((logits.argmax(axis=1) == y[:6]).mean()))
    with pytest.raises(KdbenchError, match="augmentation needs cache_features false"):
        teacher.fit_teacher(probe, "unused", x, y, learning_rate=0.1, batch_size=4, epochs=1, seed=0,
                            resume_dir=tmp_path / "other", cache_features=True, views=augment.EpochViews(3))


def test_teacher_augmentation_is_a_teachers_own_key_and_not_with_cached_features():
    base = yaml.safe_load((ROOT / "config.yaml").read_text())
    schema = ROOT / "schemas" / "config.schema.yaml"
    merged = json.loads(json.dumps(base))
    merged["teachers"]["finetuned"]["augment"] = True
    assert config.config_errors(merged, schema) == []
    merged["teachers"]["frozen"]["augment"] = True  # cache_features: true
    assert config.config_errors(merged, schema) == [
        "teachers.frozen.augment: true needs cache_features: false (cached backbone features are computed once, "
        "on the images as they are, not on each epoch's views)"]
