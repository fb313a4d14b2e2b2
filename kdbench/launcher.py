"""`kdbench run`: Snakemake with presets by name and nested settings from the command line.

Snakemake's own `--config key=value` sets top-level keys only (`--config data.source=npz` is refused),
and every data, training and method setting here is nested. `--set data.source=npz` is written, with
every other `--set`, into one small nested YAML file that is passed as the last `--configfile`, so it
wins over config.yaml and the presets; everything else on the command line goes to Snakemake as is.

    kdbench run --preset quick --set train.epochs=2 --set 'seeds=[0, 1]' --cores 4
    kdbench run --preset tiny -n

Only Python's standard library and PyYAML: it starts in a fraction of a second and never loads TensorFlow.
`kdbench compare` (kdbench.compare) sets finished runs side by side; it loads pandas and SciPy.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from pathlib import Path

import yaml

from kdbench import KdbenchError

ROOT = Path(__file__).resolve().parents[1]
PRESETS = ROOT / "presets"
KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)*")
CONFIGFILE_OPTIONS = ("--configfile", "--configfiles")

USAGE = """\
usage: kdbench run [--preset NAME|FILE ...] [--set key.path=value ...] [snakemake arguments ...]
       kdbench compare results/A results/B [...] [--csv PATH]   (finished runs side by side)

Runs Snakemake on this workflow with the given presets and settings.

  --preset NAME|FILE   presets/NAME.yaml (e.g. quick, tiny, sweep, offline) or a YAML file of your own;
                       repeat it to stack presets, the later one winning
  --set key.path=value one nested setting, the value read as YAML: --set train.epochs=2,
                       --set data.path=data/cifar10.npz, --set 'seeds=[0, 1, 2]', --set teachers.finetuned=null;
                       --set values win over every preset and over --configfile files
  anything else        passed to Snakemake unchanged: -n (dry run), --cores 8, --report report.html, ...

Presets here: {presets}
"""


def available_presets() -> list[str]:
    return sorted(path.stem for path in PRESETS.glob("*.yaml"))


def resolve_preset(name: str) -> Path:
    """A preset's file: an existing path as given, else presets/<name>.yaml of this project."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml") or os.sep in name or "/" in name:
        if path.is_file():
            return path.resolve()
        raise KdbenchError(f"--preset {name}: no such file")
    preset = PRESETS / f"{name}.yaml"
    if preset.is_file():
        return preset
    raise KdbenchError(f"--preset {name}: no such preset; the presets are {', '.join(available_presets())}, "
                       "or give a path to a YAML file")


def parse_set(text: str) -> tuple[list[str], object]:
    """'train.epochs=2' -> (['train', 'epochs'], 2); the value is read as YAML (numbers, null, lists)."""
    key, equals, value = text.partition("=")
    key = key.strip()
    if not equals or not KEY.fullmatch(key):
        raise KdbenchError(f"--set {text!r}: expected key.path=value, e.g. --set train.epochs=2 or "
                           "--set data.source=npz")
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError as err:
        problem = str(getattr(err, "problem", None) or err).splitlines()[0]
        raise KdbenchError(f"--set {text!r}: the value is not valid YAML ({problem}); quote the whole "
                           "--set argument for the shell, e.g. --set 'seeds=[0, 1]'") from None
    return key.split("."), parsed


def nested_settings(sets: list[str]) -> dict:
    """Every --set as one nested mapping; a later --set of the same key wins."""
    settings: dict = {}
    for text in sets:
        path, value = parse_set(text)
        node = settings
        for depth, part in enumerate(path[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise KdbenchError(f"--set {text!r}: {'.'.join(path[:depth + 1])} is already set to a value, "
                                   "not a mapping, by an earlier --set")
            node = child
        if isinstance(node.get(path[-1]), dict) and not isinstance(value, dict):
            raise KdbenchError(f"--set {text!r}: an earlier --set already sets keys below {'.'.join(path)}")
        node[path[-1]] = value
    return settings


def write_settings(settings: dict, folder: Path) -> Path:
    """The settings as a YAML file named by its content: the same --set values reuse the same file."""
    text = "# written by `kdbench run` from its --set options\n" + yaml.safe_dump(settings, sort_keys=True)
    path = folder / f"kdbench-set-{hashlib.sha256(text.encode()).hexdigest()[:12]}.yaml"
    if not (path.is_file() and path.read_text() == text):
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(text)
        os.replace(tmp, path)
    return path


def _split(argv: list[str]) -> tuple[list[str], list[str], list[str], list[str]]:
    """(presets, sets, Snakemake's --configfile files, the rest for Snakemake) from `kdbench run`'s arguments."""
    presets, sets, configfiles, rest = [], [], [], []
    args = list(argv)
    while args:
        arg = args.pop(0)
        option, equals, inline = arg.partition("=")
        if option in ("--preset", "--set"):
            if not equals:
                if not args or args[0].startswith("-"):
                    raise KdbenchError(f"{option} needs a value, e.g. "
                                       + ("--preset quick" if option == "--preset" else "--set train.epochs=2"))
                inline = args.pop(0)
            (presets if option == "--preset" else sets).append(inline)
        elif option in CONFIGFILE_OPTIONS:  # merged into ours: a second --configfile would replace the first
            if equals:
                configfiles.append(inline)
            while args and not args[0].startswith("-"):
                configfiles.append(args.pop(0))
        elif arg == "--":
            rest.extend(args)
            break
        else:
            rest.append(arg)
    return presets, sets, configfiles, rest


def build_command(argv: list[str], cwd: str | Path | None = None) -> list[str]:
    """The Snakemake command line `kdbench run <argv>` runs (writing the --set file under cwd/.snakemake/)."""
    cwd = Path(cwd or os.getcwd())
    presets, sets, configfiles, rest = _split(argv)
    files = [str(resolve_preset(name)) for name in presets] + configfiles
    settings = nested_settings(sets)
    if settings:
        files.append(str(write_settings(settings, cwd / ".snakemake")))
    command = [sys.executable, "-m", "snakemake"]
    if not any(arg in ("-s", "--snakefile") or arg.startswith("--snakefile=") for arg in rest) \
            and not any((cwd / name).is_file() for name in ("Snakefile", "workflow/Snakefile")):
        command += ["--snakefile", str(ROOT / "Snakefile")]  # run from elsewhere: outputs land in cwd
    if files:
        command += ["--configfile", *files]
    return command + rest


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    usage = USAGE.format(presets=", ".join(available_presets()))
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage, end="")
        return 0
    if argv[0] == "compare":  # pandas and SciPy, imported only for it
        from kdbench import compare

        return compare.main(argv[1:])
    if argv[0] != "run":
        print(f"kdbench: unknown command {argv[0]!r}; the commands are `kdbench run` and `kdbench compare` "
              "(kdbench --help)", file=sys.stderr)
        return 2
    if any(arg in ("-h", "--help") for arg in argv[1:]):
        print(usage, end="")
        return 0
    try:
        command = build_command(argv[1:])
    except KdbenchError as err:
        print(f"kdbench: error: {err}", file=sys.stderr)
        return 2
    print("kdbench: " + " ".join(command[1:]), file=sys.stderr, flush=True)
    os.execv(command[0], command)  # Snakemake takes over this process: its exit status, its signals
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
