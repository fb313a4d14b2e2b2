"""The conda environment of `--sdm conda` runs the same package versions as the pip install."""

import re
import tomllib

import yaml
from conftest import ROOT

# Needed only by the Snakemake process that schedules jobs, not inside a job's environment.
RUNNER_ONLY = {"snakemake", "snakemake-executor-plugin-slurm", "snakemake-executor-plugin-slurm-jobstep"}


def pins(requirements):
    """{'pandas': '3.1.1', ...} from 'name==version' strings; anything unpinned is an error."""
    result = {}
    for requirement in requirements:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)==([A-Za-z0-9_.+-]+)", requirement.strip())
        assert match, f"{requirement!r} is not pinned as name==version"
        result[match[1].lower().replace("_", "-")] = match[2]
    return result


def test_conda_environment_pins_the_same_versions_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    environment = yaml.safe_load((ROOT / "envs" / "kdbench.yaml").read_text())
    pip_section = next(item["pip"] for item in environment["dependencies"] if isinstance(item, dict))
    # the conda environment is TensorFlow's, the default backend (an extra of the pip install)
    required = project["dependencies"] + project["optional-dependencies"]["tensorflow"]
    expected = {name: version for name, version in pins(required).items() if name not in RUNNER_ONLY}
    assert pins(pip_section) == expected
    python = next(item for item in environment["dependencies"] if isinstance(item, str) and item.startswith("python="))
    minor = int(python.split("=")[1].split(".")[1])
    low, high = (int(v.split(".")[1]) for v in re.findall(r"3\.\d+", project["requires-python"]))
    assert low <= minor < high, f"{python} is outside requires-python {project['requires-python']}"


def test_every_rule_that_runs_a_command_names_the_environment():
    for path in sorted((ROOT / "rules").glob("*.smk")):
        for rule in re.split(r"^rule ", path.read_text(), flags=re.M)[1:]:
            if "shell:" in rule:
                assert 'conda:\n        "../envs/kdbench.yaml"' in rule, f"{path.name}: rule {rule.split(':')[0]}"


def test_gpu_extra_pins_the_same_tensorflow_as_the_cpu_install():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (gpu,) = project["optional-dependencies"]["gpu"]
    match = re.fullmatch(r"tensorflow\[and-cuda\]==([0-9.]+)", gpu)
    assert match, f"the gpu extra should be tensorflow[and-cuda]==<version>, not {gpu!r}"
    assert match[1] == pins(project["optional-dependencies"]["tensorflow"])["tensorflow"]


def test_backend_extras_are_bounded_and_tensorflow_is_an_extra():
    """make setup BACKEND=jax builds a venv without TensorFlow: no required dependency may pull it in.

    jax and jax-cuda pin one version; torch is a bounded range, since machines cap it differently (pip
    constraints) and each of its releases carries its own CUDA build."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert not any(requirement.startswith("tensorflow") for requirement in project["dependencies"])
    jax_versions = {re.fullmatch(r"jax\[[a-z0-9]+\]==([0-9.]+)", extras[name][0])[1] for name in ("jax", "jax-cuda")}
    assert len(jax_versions) == 1, f"jax and jax-cuda pin different versions: {jax_versions}"
    assert re.fullmatch(r"torch>=[0-9.]+,<[0-9.]+", extras["torch"][0]), extras["torch"]
    makefile = (ROOT / "Makefile").read_text()
    assert "BACKEND ?= tensorflow" in makefile and ".venv-$(BACKEND)" in makefile
