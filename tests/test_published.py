"""kdbench.published: the published CIFAR-100 figures and the protocol a run must follow to stand beside them
(tests/test_presets.py checks that presets/crd.yaml follows it)."""

from kdbench import architectures, published

PROTOCOL_DATA = {"dataset": "cifar100", "source": "download", "train_size": 50000, "val_size": 0, "test_size": 10000}


def protocol_train(role="baseline", architecture="resnet8x4", **changes):
    """A train.json of a run that follows the protocol, with `changes`."""
    return {**published.TRAIN, "role": role, "architecture": architecture, "learning_rate": 0.05,
            "warmup_epochs": 1, "checkpoint": "last", "seed": 0, **changes}


def test_figures_are_the_papers():
    assert published.VANILLA["resnet32x4"] == 79.42 and published.VANILLA["resnet8x4"] == 72.50
    assert published.PAIRS[("resnet32x4", "resnet8x4")] == {"kd": 73.33, "crd": 75.51, "dkd": 76.32,
                                                            "dkd_beta": 8.0}
    assert published.PAIRS[("resnet56", "resnet20")]["dkd"] == 71.97
    assert published.PAIRS[("vgg13", "vgg8")]["kd"] == 72.98


def test_every_pair_has_both_networks_alone_and_a_beta_with_its_dkd_figure():
    for (teacher, student), figures in published.PAIRS.items():
        assert teacher in published.VANILLA and student in published.VANILLA
        assert ("dkd" in figures) == ("dkd_beta" in figures)
        assert published.VANILLA[teacher] > published.VANILLA[student]


def test_the_pairs_name_registered_architectures():
    names = {name for pair in published.PAIRS for name in pair} | set(published.SMALL_LR_STUDENTS)
    assert names <= set(architectures.ARCHITECTURES)


def test_a_run_of_the_protocol_matches_and_each_difference_is_named():
    assert published.protocol_mismatches(PROTOCOL_DATA, protocol_train()) == []
    assert published.protocol_mismatches(PROTOCOL_DATA, protocol_train("teacher", "resnet32x4")) == []
    for key, value in (("epochs", 2), ("batch_size", 128), ("nesterov", True), ("weight_decay_mode", "decoupled"),
                       ("lr_milestones", [100, 150]), ("schedule", "cosine"), ("augment", False), ("ema", 0.99),
                       ("upsample", 2), ("learning_rate", 0.1)):
        problems = published.protocol_mismatches(PROTOCOL_DATA, protocol_train(**{key: value}))
        assert len(problems) == 1 and problems[0].startswith(key), (key, problems)
    for key, value in (("dataset", "cifar10"), ("train_size", 10000), ("val_size", 2000), ("test_size", 2000)):
        problems = published.protocol_mismatches({**PROTOCOL_DATA, key: value}, protocol_train())
        assert problems == [f"data {key} {value!r}, the protocol's {published.DATA[key]!r}"]
    assert published.protocol_mismatches({**PROTOCOL_DATA, "source": "synthetic"}, protocol_train()) == [
        "the data are synthetic"]


def test_mobilenet_and_shufflenet_students_train_at_a_fifth_of_the_rate():
    assert published.learning_rate("shufflenetv1") == 0.01 and published.learning_rate("resnet8x4") == 0.05
    small = protocol_train(architecture="shufflenetv1")
    assert published.protocol_mismatches(PROTOCOL_DATA, small) == ["learning_rate 0.05, the protocol's 0.01"]
    assert published.protocol_mismatches(PROTOCOL_DATA, {**small, "learning_rate": 0.01}) == []


def test_a_distilled_figure_needs_the_published_method_settings():
    kd = {"alpha": 0.1, "temperature": 4}
    assert published.figure("distilled", "resnet8x4", "resnet32x4", "kd", kd) == (73.33, published.CRD)
    assert published.figure("distilled", "resnet8x4", "resnet32x4", "kd", {**kd, "alpha": 0.3}) is None
    assert published.figure("distilled", "resnet8x4", "resnet32x4", "kd", {**kd, "standardize": True}) is None
    assert published.figure("distilled", "resnet8x4", "resnet32x4", "kd", {**kd, "standardize": False}) == (
        73.33, published.CRD)
    dkd = {"alpha": 1.0, "beta": 8.0, "temperature": 4, "warmup": 20}
    assert published.figure("distilled", "resnet8x4", "resnet32x4", "dkd", dkd) == (76.32, published.DKD)
    assert published.figure("distilled", "resnet8x4", "resnet32x4", "dkd", {**dkd, "warmup": 1}) is None
    assert published.figure("distilled", "resnet20", "resnet56", "dkd", dkd) is None  # that pair's beta is 2
    assert published.figure("distilled", "resnet20", "resnet56", "dkd", {**dkd, "beta": 2}) == (71.97, published.DKD)
    assert published.figure("distilled", "resnet20", "resnet110", "dkd", dkd) is None  # not published
    assert published.figure("distilled", "resnet8", "resnet32x4", "kd", kd) is None  # not a standard pair
    assert published.figure("baseline", "resnet8x4") == (72.50, published.CRD)
    assert published.figure("teacher", "resnet32x4") == (79.42, published.CRD)
    assert published.figure("baseline", "resnet8") is None

