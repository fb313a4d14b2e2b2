rule distill:
    input:
        data=DATA,
        teacher=teacher_source,
    output:
        **training_outputs("student-kd-{teacher}-a{alpha}-t{temperature}-s{seed}"),
    params:
        common=lambda wildcards: training_flags(
            f"student-kd-{wildcards.teacher}-a{wildcards.alpha}-t{wildcards.temperature}-s{wildcards.seed}"
        ),
        teacher_flag=(
            "--teacher-logits"
            if config["distillation"]["soft_targets"] == "cached"
            else "--teacher-model"
        ),
        learning_rate=config["student"]["learning_rate"],
        augment="--augment" if config["student"]["augment"] else "",
    threads: config["threads"]
    resources:
        gpu=1,
    log:
        "results/logs/train/student-kd-{teacher}-a{alpha}-t{temperature}-s{seed}.log",
    benchmark:
        training_benchmark("student-kd-{teacher}-a{alpha}-t{temperature}-s{seed}")
    conda:
        "../envs/kdbench.yaml"
    shell:
        "python \"$KDBENCH_SCRIPTS/train_student.py\" {params.teacher_flag} {input.teacher} --teacher-name {wildcards.teacher} "
        "--alpha {wildcards.alpha} --temperature {wildcards.temperature} {params.common} "
        "--learning-rate {params.learning_rate} {params.augment} --seed {wildcards.seed} --threads {threads} "
        "--model-out {output.model} --history-out {output.history} --info-out {output.info} > {log} 2>&1"


rule train_baseline:
    input:
        data=DATA,
    output:
        **training_outputs("student-baseline-s{seed}"),
    params:
        common=lambda wildcards: training_flags(f"student-baseline-s{wildcards.seed}"),
        learning_rate=config["student"]["learning_rate"],
        augment="--augment" if config["student"]["augment"] else "",
    threads: config["threads"]
    resources:
        gpu=1,
    log:
        "results/logs/train/student-baseline-s{seed}.log",
    benchmark:
        training_benchmark("student-baseline-s{seed}")
    conda:
        "../envs/kdbench.yaml"
    shell:
        "python \"$KDBENCH_SCRIPTS/train_student.py\" {params.common} --learning-rate {params.learning_rate} {params.augment} "
        "--seed {wildcards.seed} --threads {threads} "
        "--model-out {output.model} --history-out {output.history} --info-out {output.info} > {log} 2>&1"
