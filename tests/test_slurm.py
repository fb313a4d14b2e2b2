"""The tiny workflow through profiles/slurm on a real single-node SLURM cluster started on localhost.

Needs root and Debian's slurm-wlm and munge (installed with apt-get when missing). Where the cluster
cannot be started the tests are skipped with the reason; with KDBENCH_REQUIRE_SLURM=1 (CI) they fail.
Every daemon runs in the foreground as a child of this process and is stopped at the end.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import ROOT

pytestmark = pytest.mark.slurm

PROFILE = ROOT / "profiles" / "slurm"
TINY = ROOT / "presets" / "tiny.yaml"
PACKAGES = ["slurm-wlm", "munge"]
PROGRAMS = ["munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel"]
# The plugin's job step drops SLURM_CONF before its inner `srun`, which then reads the system path.
SYSTEM_CONF = Path("/etc/slurm/slurm.conf")
MARKER = "# Written by kdbench's tests/test_slurm.py for a throw-away cluster; removed when the tests end."
GPUS = 2  # fake GPUs (links to /dev/null): SLURM schedules them, TensorFlow sees none
SNAKEMAKE_LIMIT_S = 900
# Jobs that ran through SLURM for the tiny workflow: fetch_data and summarize are local rules.
CLUSTER_JOBS = {"train_teacher": 1, "train_student": 2, "teacher_logits": 1, "evaluate": 3}  # one teacher


def unavailable(reason: str):
    if os.environ.get("KDBENCH_REQUIRE_SLURM") == "1":
        pytest.fail(f"KDBENCH_REQUIRE_SLURM=1 but {reason}")
    pytest.skip(reason)


def install_packages() -> None:
    """apt-get install slurm-wlm and munge when any of their programs is missing."""
    missing = [name for name in PROGRAMS if not shutil.which(name)]
    if not missing:
        return
    if not shutil.which("apt-get"):
        unavailable(f"SLURM is not installed ({', '.join(missing)} missing) and there is no apt-get to install "
                    f"{' '.join(PACKAGES)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"],
                    ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES]):
        result = subprocess.run(command, env=env, capture_output=True, text=True)
        if result.returncode:
            unavailable(f"`{' '.join(command)}` failed: {result.stderr.strip()[-500:]}")
    missing = [name for name in PROGRAMS if not shutil.which(name)]
    if missing:
        unavailable(f"{', '.join(missing)} not on PATH after installing {' '.join(PACKAGES)} "
                    f"(PATH={os.environ['PATH']})")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(check, seconds: float, what: str, logs: list[Path]) -> None:
    """Poll `check` until it is true; fail with the daemons' log tails after `seconds`."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {log}\n" + "\n".join(log.read_text().splitlines()[-15:])
                              for log in logs if log.exists())
            pytest.fail(f"{what} did not happen within {seconds} s\n{tails}")
        time.sleep(0.5)


class LocalCluster:
    """munged + slurmctld + slurmd on 127.0.0.1: one node with this machine's CPUs and GPUS fake GPUs."""

    def __init__(self, root: Path):
        self.root = root
        self.conf = root / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self.daemons: list[subprocess.Popen] = []
        self.logs = [root / "munged.log", root / "slurmctld.log", root / "slurmd.log"]

    def write_config(self) -> None:
        profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
        biggest_mb = max(res.get("mem_mb", 0) for res in [profile["default-resources"],
                                                         *profile["set-resources"].values()])
        for folder in ("state", "spool", "gpus"):
            (self.root / folder).mkdir()
        for index in range(GPUS):  # SLURM wants a device file per GPU
            (self.root / "gpus" / f"gpu{index}").symlink_to("/dev/null")
        host = socket.gethostname().split(".")[0]  # SLURM compares short host names
        node = (f"NodeName=kdbench-node NodeHostname={host} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} "
                f"RealMemory={2 * biggest_mb} Gres=gpu:{GPUS} State=UNKNOWN")
        self.conf.write_text(f"""{MARKER}
ClusterName=kdbench-test
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.root / "munge.sock"}
SlurmUser=root
SlurmdUser=root
StateSaveLocation={self.root / "state"}
SlurmdSpoolDir={self.root / "spool"}
SlurmctldPidFile={self.root / "slurmctld.pid"}
SlurmdPidFile={self.root / "slurmd.pid"}
SlurmctldLogFile={self.root / "slurmctld.log"}
SlurmdLogFile={self.root / "slurmd.log"}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
ReturnToService=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# without a default, a job that asks no memory books the whole node and jobs run one at a time
DefMemPerCPU=1000
# squeue is the status command here (no slurmdbd): finished jobs must stay listed long enough
MinJobAge=600
KillWait=5
GresTypes=gpu
# the node's memory is booked (room for two of the profile's biggest jobs), not enforced
SlurmdParameters=config_overrides
{node}
PartitionName=debug Nodes=kdbench-node Default=YES MaxTime=INFINITE State=UP
""")
        gres = f"NodeName=kdbench-node Name=gpu File={self.root}/gpus/gpu[0-{GPUS - 1}]\n"
        (self.root / "gres.conf").write_text(gres)
        SYSTEM_CONF.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.conf, SYSTEM_CONF)

    def start(self) -> None:
        self.write_config()
        key = self.root / "munge.key"
        subprocess.run(["mungekey", "--create", f"--keyfile={key}"], check=True, capture_output=True)
        self.spawn(["munged", "--foreground", "--force", f"--socket={self.root / 'munge.sock'}", f"--key-file={key}",
                    f"--pid-file={self.root / 'munged.pid'}", f"--log-file={self.root / 'munged.log'}",
                    f"--seed-file={self.root / 'munged.seed'}"])
        wait_for((self.root / "munge.sock").exists, 30, "munged creating its socket", self.logs)
        self.spawn(["slurmctld", "-D", "-f", str(self.conf)])
        wait_for(lambda: self.run("scontrol", "ping").returncode == 0, 60, "slurmctld answering", self.logs)
        self.spawn(["slurmd", "-D", "-f", str(self.conf), "-N", "kdbench-node"])
        wait_for(lambda: self.run("sinfo", "-h", "-o", "%T").stdout.strip() == "idle", 60, "the node going idle",
                 self.logs)

    def spawn(self, command: list[str]) -> None:
        with open(self.root / f"{command[0]}.out", "w") as log:
            self.daemons.append(subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT))

    def run(self, *command: str) -> subprocess.CompletedProcess:
        return subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=30)

    def jobs(self) -> pd.DataFrame:
        """Every job SLURM knows (finished ones stay MinJobAge seconds): id, rule, state, cpus, gpus, memory, limit."""
        fields = "JobID:12|,Comment:100|,State:12|,NumCPUs:6|,tres-per-job:20|,MinMemory:10|,TimeLimit:14"
        out = self.run("squeue", "-h", "-t", "all", "-O", fields).stdout
        rows = [[cell.strip() for cell in line.split("|")] for line in out.splitlines() if line.strip()]
        table = pd.DataFrame(rows, columns=["job", "comment", "state", "cpus", "gpus", "memory", "limit"])
        table["rule"] = table["comment"].str.extract(r"^rule_(\w+?)(?:_wildcards_|$)")[0]
        return table.astype({"job": int}).sort_values("job").reset_index(drop=True)

    def stop(self) -> None:
        """Cancel every job, then stop the daemons this object started (newest first)."""
        try:
            if len(self.daemons) == 3 and all(daemon.poll() is None for daemon in self.daemons):
                ids = self.run("squeue", "-h", "-t", "PENDING,RUNNING", "-o", "%i").stdout.split()
                if ids:  # slurmd leaves running jobs alone when it stops: end them first
                    self.run("scancel", *ids)
                    wait_for(lambda: not self.run("squeue", "-h", "-t", "PENDING,RUNNING,COMPLETING").stdout.strip(),
                             60, "cancelled jobs ending", self.logs)
        finally:
            for daemon in reversed(self.daemons):
                if daemon.poll() is None:
                    daemon.send_signal(signal.SIGTERM)
                    try:
                        daemon.wait(timeout=20)
                    except subprocess.TimeoutExpired:
                        daemon.kill()
                        daemon.wait()
            if SYSTEM_CONF.exists() and SYSTEM_CONF.read_text().startswith(MARKER):
                SYSTEM_CONF.unlink()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if os.geteuid() != 0:
        unavailable("starting slurmctld, slurmd and munged by hand needs root")
    if SYSTEM_CONF.exists() and not SYSTEM_CONF.read_text().startswith(MARKER):
        unavailable(f"{SYSTEM_CONF} exists: this machine has its own SLURM set-up, which the test leaves alone")
    install_packages()
    local = LocalCluster(tmp_path_factory.mktemp("slurm"))
    try:
        local.start()
        yield local
    finally:
        local.stop()


def snakemake_on_slurm(cluster: LocalCluster, workdir: Path, *args, wait: bool = True):
    """Run the workflow as the README says, plus the settings a cluster without slurmdbd needs."""
    command = ["timeout", "-k", "30", str(SNAKEMAKE_LIMIT_S),  # Snakemake ignores SIGTERM while jobs look active
               sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--workflow-profile", str(PROFILE),
               "--configfile", str(TINY), "--max-threads", str(os.cpu_count()),  # more CPUs than the node: pends
               "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "1",
               "--slurm-keep-successful-logs", *map(str, args)]
    if not wait:
        return subprocess.Popen(command, cwd=workdir, env=cluster.env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
    return subprocess.run(command, cwd=workdir, env=cluster.env, capture_output=True, text=True)


@pytest.fixture(scope="module")
def tiny_on_slurm(cluster, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("tiny-slurm")
    one_teacher = workdir / "one-teacher.yaml"
    one_teacher.write_text("teachers: {finetuned: null}\n")  # the cluster's part needs one teacher, not both
    result = snakemake_on_slurm(cluster, workdir, "--configfile", TINY, one_teacher)
    jobs = cluster.jobs()
    print(f"jobs SLURM ran for the tiny workflow:\n{jobs.drop(columns='comment').to_string(index=False)}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return workdir, result.stdout + result.stderr, jobs


def test_tiny_workflow_runs_through_the_slurm_profile(tiny_on_slurm):
    workdir, log, jobs = tiny_on_slurm
    results = workdir / "results" / "tiny"
    summary = (results / "summary.md").read_text()
    runs = pd.read_csv(results / "runs.tsv", sep="\t")
    assert len(runs) == 3 and "| baseline resnet18 " in summary
    for model in runs["id"]:
        assert json.loads((results / "eval" / model / "metrics.json").read_text())["model"] == model
    assert jobs["rule"].value_counts().to_dict() == CLUSTER_JOBS
    assert set(jobs["state"]) == {"COMPLETED"}
    assert set(jobs["gpus"]) == {"gres:gpu:1"}  # resources: gpu=1 became --gpus=1
    assert "localrule fetch_data" in log and "localrule summarize" in log and "localrule runs_table" in log
    assert len(re.findall(r"has been submitted with SLURM jobid \d+", log)) == sum(CLUSTER_JOBS.values())


def test_profile_resources_reach_sbatch(tiny_on_slurm):
    _, _, jobs = tiny_on_slurm
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    for rule, resources in profile["set-resources"].items():
        booked = jobs[jobs["rule"] == rule]
        assert set(booked["memory"]) == {f"{resources['mem_mb']}M"}, rule
        hours, minutes = divmod(resources["runtime"], 60)
        assert set(booked["limit"]) == {f"{hours}:{minutes:02d}:00" if hours else f"{minutes}:00"}, rule


def test_job_killed_on_the_cluster_is_resubmitted_and_resumes(cluster, tmp_path):
    """scancel sends what the time limit sends (SIGTERM, then SIGKILL); the profile's retries resubmit."""
    epochs = 12
    preset = tmp_path / "longer.yaml"
    preset.write_text(f"train:\n  epochs: {epochs}\n")
    target = "results/tiny/models/baseline-resnet18-s0/model.keras"
    run = snakemake_on_slurm(cluster, tmp_path, target, "--configfile", TINY, preset, wait=False)
    progress = tmp_path / "results" / "tiny" / ".resume" / "baseline-resnet18-s0" / "backup" / "training_metadata.json"
    try:
        wait_for(lambda: progress.exists() or run.poll() is not None, SNAKEMAKE_LIMIT_S, "a first finished epoch",
                 cluster.logs)
        assert run.poll() is None, "the run ended before its first epoch: " + run.stdout.read()[-5000:]
        running = cluster.jobs().query("rule == 'train_student' and state == 'RUNNING'")
        assert len(running) == 1, cluster.jobs()
        killed = int(running["job"].iloc[0])
        cluster.run("scancel", str(killed))
        output, _ = run.communicate(timeout=SNAKEMAKE_LIMIT_S + 60)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, output[-5000:]
    attempts = cluster.jobs().query("rule == 'train_student' and job >= @killed")
    print(f"SLURM jobs of the killed and resubmitted training:\n{attempts.to_string(index=False)}")
    assert list(attempts["state"]) == ["CANCELLED", "COMPLETED"]
    log = next((tmp_path / "results" / "tiny" / "logs").rglob("*baseline*s0.log")).read_text()  # the second attempt's
    assert "resuming from the last finished epoch" in log
    first_epoch = int(re.search(rf"epoch (\d+)/{epochs} started", log)[1])
    assert first_epoch > 1, log[-2000:]
    history = pd.read_csv(tmp_path / "results" / "tiny" / "models" / "baseline-resnet18-s0" / "history.csv")
    assert list(history["epoch"]) == list(range(1, epochs + 1))
