# kdbench: knowledge distillation benchmarked end to end. Setup only; the rules live in rules/.
from snakemake.utils import min_version

min_version("9.0")


configfile: f"{workflow.basedir}/config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/teachers.smk"
include: "rules/students.smk"
include: "rules/evaluate.smk"
include: "rules/report.smk"


onstart:
    # before any job: every missing input (data, weights) at once, instead of one failed job at a time
    check_inputs()


# On a cluster these run on the submit host: fetch_data may need the internet, the others take a second.
localrules:
    fetch_data,
    runs_table,
    summarize,


rule all:
    default_target: True
    input:
        SUMMARY,


rule teachers:
    input:
        RUNS_TSV,
        [model_file(model) for model in TEACHER_IDS],


rule students:
    input:
        RUNS_TSV,
        [model_file(model) for model in STUDENT_IDS],


rule evaluation:
    input:
        RUNS_TSV,
        [metrics_file(model) for model in RUNS.index],
