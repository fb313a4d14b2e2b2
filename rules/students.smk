rule train_student:
    input:
        data=DATA,
        teacher=teacher_source,
    output:
        **training_outputs("{model}"),
    log:
        f"{RESULTS}/logs/train/{{model}}.log",
    benchmark:
        training_benchmark("{model}")
    wildcard_constraints:
        model="(?!teacher-)[A-Za-z0-9_.-]+",
    conda:
        "../envs/kdbench.yaml"
    threads: config["threads"]
    resources:
        gpu=1,
    params:
        code=CODE_HASH["train_student"],  # reruns the job when its code changes
        common=lambda wildcards: training_flags(wildcards.model),
        student=student_flags,
    shell:
        'python "$KDBENCH_SCRIPTS/train_student.py" {params.student} {params.common} --threads {threads} '
        "--model-out {output.model} --history-out {output.history} --info-out {output.info} > {log} 2>&1"
