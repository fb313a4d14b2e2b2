rule train_teacher:
    input:
        DATA,
    output:
        **training_outputs("teacher-{teacher}"),
    params:
        common=lambda wildcards: training_flags(f"teacher-{wildcards.teacher}"),
        learning_rate=lambda wildcards: config["teachers"][wildcards.teacher]["learning_rate"],
        weights=shlex.quote(str(config["model"]["weights"] or "none")),
        cache=lambda wildcards: (
            "--cache-features"
            if wildcards.teacher == "frozen" and config["teachers"]["frozen"]["cache_features"]
            else "--no-cache-features"
        ),
        seed=TEACHER_SEED,
    threads: config["threads"]
    resources:
        gpu=1,
    log:
        "results/logs/train/teacher-{teacher}.log",
    benchmark:
        training_benchmark("teacher-{teacher}")
    conda:
        "../envs/kdbench.yaml"
    shell:
        "python \"$KDBENCH_SCRIPTS/train_teacher.py\" --kind {wildcards.teacher} --weights {params.weights} {params.cache} "
        "{params.common} "
        "--learning-rate {params.learning_rate} --seed {params.seed} --threads {threads} "
        "--model-out {output.model} --history-out {output.history} --info-out {output.info} > {log} 2>&1"


rule teacher_logits:
    input:
        data=DATA,
        model=model_file("teacher-{teacher}"),
    output:
        "results/logits/teacher-{teacher}.npy",
    threads: config["threads"]
    resources:
        gpu=1,
    log:
        "results/logs/teacher_logits/{teacher}.log",
    benchmark:
        "results/benchmarks/teacher_logits/{teacher}.tsv"
    conda:
        "../envs/kdbench.yaml"
    shell:
        "python \"$KDBENCH_SCRIPTS/teacher_logits.py\" --data {input.data} --model {input.model} --threads {threads} "
        "--out {output} > {log} 2>&1"
