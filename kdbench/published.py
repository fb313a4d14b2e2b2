"""Published CIFAR-100 top-1 accuracies of the field's standard teacher -> student pairs, and the protocol they
were measured under, so that a kdbench run of that protocol can be set beside them (kdbench.report).

Sources (each figure below was checked against the README of the paper's own code, which lists the paper's
tables; the paper PDFs themselves were not at hand):
- CRD: Tian, Krishnan & Isola, "Contrastive Representation Distillation", ICLR 2020, Tables 1 and 2 (teacher,
  student, KD and CRD), as RepDistiller's README lists them.
- DKD: Zhao, Cui, Song, Qiu & Liang, "Decoupled Knowledge Distillation", CVPR 2022, the DKD figures as
  mdistiller's README lists them (the paper's teacher, student and KD figures are CRD's); its wrn_40_2 -> wrn_16_2
  figure, 76.23, is the one to recheck against the paper's table.
  mdistiller's README labels the resnet32x4 -> ShuffleNetV2 column "MobileNet-V2"; its KD figure (74.45) and
  mdistiller's res32x4_shuv2 config say ShuffleNetV2.

The protocol (RepDistiller's train_student.py and mdistiller's configs/cifar100): the 50,000 official training
images, no validation split, the 10,000 test images, 32 px; SGD momentum 0.9 (no Nesterov), PyTorch's L2 weight
decay 5e-4, batch 64, 240 epochs, learning rate 0.05 (0.01 for MobileNetV2 and ShuffleNet students), x0.1 at
epochs 150, 180 and 210; 4 px padded random crops and flips for teachers and students. KD: T 4, 0.1 CE + 0.9 KD;
DKD: alpha 1, the pair's beta, T 4, 20 warm-up epochs. Both papers report the best test accuracy over the
epochs (RepDistiller's best_acc; mdistiller's best test accuracy), a mean over runs for CRD's tables.

Architecture names are kdbench's registry names (kdbench.architectures).
"""

from __future__ import annotations

CRD = "Tian et al., Contrastive Representation Distillation, ICLR 2020, Tables 1-2"
DKD = "Zhao et al., Decoupled Knowledge Distillation, CVPR 2022 (mdistiller README)"

# The students the papers train at learning rate 0.01 instead of 0.05
SMALL_LR_STUDENTS = ("mobilenetv2-cifar", "shufflenetv1", "shufflenetv2")

# What a run must have to be comparable: data facts (fetch_data's dataset.json) and training facts (train.json)
DATA = {"dataset": "cifar100", "train_size": 50000, "val_size": 0, "test_size": 10000}
TRAIN = {"upsample": 1, "epochs": 240, "batch_size": 64, "optimizer": "sgd", "momentum": 0.9, "nesterov": False,
         "weight_decay": 5e-4, "weight_decay_mode": "l2", "schedule": "multistep", "lr_milestones": [150, 180, 210],
         "lr_decay": 0.1, "ema": None, "augment": True}
KD_SETTINGS = {"alpha": 0.1, "temperature": 4.0}
DKD_SETTINGS = {"alpha": 1.0, "temperature": 4.0, "warmup": 20.0}  # beta: the pair's (PAIRS)

# Top-1 (%) of each network trained alone (CRD Tables 1-2; DKD's tables repeat them)
VANILLA = {
    "wrn_40_2": 75.61, "resnet56": 72.34, "resnet110": 74.31, "resnet32x4": 79.42, "vgg13": 74.64,
    "wrn_16_2": 73.26, "wrn_40_1": 71.98, "resnet20": 69.06, "resnet32": 71.14, "resnet8x4": 72.50,
    "vgg8": 70.36, "mobilenetv2-cifar": 64.60, "shufflenetv1": 70.50, "shufflenetv2": 71.82,
}

# (teacher, student) -> distilled top-1 (%) per method, and DKD's beta for the pair (mdistiller's configs; 8.0,
# its default, where a config sets none)
PAIRS = {
    ("wrn_40_2", "wrn_16_2"): {"kd": 74.92, "crd": 75.48, "dkd": 76.23, "dkd_beta": 6.0},
    ("wrn_40_2", "wrn_40_1"): {"kd": 73.54, "crd": 74.14, "dkd": 74.81, "dkd_beta": 6.0},
    ("resnet56", "resnet20"): {"kd": 70.66, "crd": 71.16, "dkd": 71.97, "dkd_beta": 2.0},
    ("resnet110", "resnet20"): {"kd": 70.67, "crd": 71.46},
    ("resnet110", "resnet32"): {"kd": 73.08, "crd": 73.48, "dkd": 74.11, "dkd_beta": 2.0},
    ("resnet32x4", "resnet8x4"): {"kd": 73.33, "crd": 75.51, "dkd": 76.32, "dkd_beta": 8.0},
    ("vgg13", "vgg8"): {"kd": 72.98, "crd": 73.94, "dkd": 74.68, "dkd_beta": 6.0},
    ("vgg13", "mobilenetv2-cifar"): {"kd": 67.37, "crd": 69.73, "dkd": 69.71, "dkd_beta": 6.0},
    ("resnet32x4", "shufflenetv1"): {"kd": 74.07, "crd": 75.11, "dkd": 76.45, "dkd_beta": 8.0},
    ("resnet32x4", "shufflenetv2"): {"kd": 74.45, "crd": 75.65, "dkd": 77.07, "dkd_beta": 8.0},
    ("wrn_40_2", "shufflenetv1"): {"kd": 74.83, "crd": 76.05, "dkd": 76.70, "dkd_beta": 8.0},
}


def learning_rate(student: str) -> float:
    """The papers' base learning rate for a student (teachers: 0.05)."""
    return 0.01 if student in SMALL_LR_STUDENTS else 0.05


def method_settings(method: str, teacher: str, student: str) -> dict | None:
    """The settings a distilled run must have for its method's published figure (None: no figure)."""
    figures = PAIRS.get((teacher, student), {})
    if method not in figures:
        return None
    if method == "kd":
        return dict(KD_SETTINGS)
    if method == "dkd":
        return {**DKD_SETTINGS, "beta": figures["dkd_beta"]}
    return None  # crd: not a kdbench method; shown beside the pair's other figures only


def _same(value, wanted) -> bool:
    if isinstance(wanted, float) and isinstance(value, (int, float)) and not isinstance(value, bool):
        return abs(float(value) - wanted) <= 1e-9 * max(1.0, abs(wanted))
    if isinstance(wanted, list):
        return list(value or []) == wanted
    if wanted is None:
        return value in (None, False, "none")
    return value == wanted


def protocol_mismatches(data_info: dict, train: dict) -> list[str]:
    """What differs, for one run, from the protocol the figures were measured under (empty: it matches).

    data_info: fetch_data's dataset.json; train: the run's train.json (its learning rate is checked against
    learning_rate(architecture) for students, 0.05 for teachers)."""
    problems = []
    if data_info.get("source") == "synthetic":
        problems.append("the data are synthetic")
    for key, wanted in DATA.items():
        if not _same(data_info.get(key, "cifar10" if key == "dataset" else None), wanted):
            problems.append(f"data {key} {data_info.get(key)!r}, the protocol's {wanted!r}")
    for key, wanted in TRAIN.items():
        if not _same(train.get(key), wanted):
            problems.append(f"{key} {train.get(key)!r}, the protocol's {wanted!r}")
    rate = 0.05 if train.get("role") == "teacher" else learning_rate(train.get("architecture", ""))
    if not _same(train.get("learning_rate"), rate):
        problems.append(f"learning_rate {train.get('learning_rate')!r}, the protocol's {rate!r}")
    return problems


def settings_match(settings: dict, wanted: dict) -> bool:
    """A distilled run's method settings are the published ones (other settings, e.g. standardize, at their
    neutral value: absent or false)."""
    if any(not _same(settings.get(key), value) for key, value in wanted.items()):
        return False
    return not any(value not in (False, None, 0) for key, value in settings.items() if key not in wanted)


def figure(role: str, architecture: str, teacher_architecture: str = "", method: str = "",
           settings: dict | None = None) -> tuple[float, str] | None:
    """(published top-1 %, source) for one kdbench configuration of the protocol, or None when none is published:
    teachers and baselines by architecture, distilled students by pair, method and settings."""
    if role in ("teacher", "baseline"):
        return (VANILLA[architecture], CRD) if architecture in VANILLA else None
    wanted = method_settings(method, teacher_architecture, architecture)
    if wanted is None or not settings_match(settings or {}, wanted):
        return None
    source = CRD if method == "kd" else DKD
    return PAIRS[(teacher_architecture, architecture)][method], source
