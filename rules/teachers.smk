rule train_teacher:
    input:
        data=DATA,
        weights=lambda wildcards: user_file(
            TEACHERS[run(wildcards.model)["teacher"]]["weights"]
        ),
    output:
        **training_outputs("{model}"),
    log:
        f"{RESULTS}/logs/train/{{model}}.log",
    benchmark:
        training_benchmark("{model}")
    wildcard_constraints:
        model="teacher-[A-Za-z0-9_.-]+",
    # Teachers and their logits are the critical path (every distilled student waits for them): schedule them first.
    priority: 2
    conda:
        "../envs/kdbench.yaml"
    threads: config["threads"]
    resources:
        gpu=1,
    params:
        code=CODE_HASH["train_teacher"],  # reruns the job when its code changes
        common=lambda wildcards: training_flags(wildcards.model),
        teacher=teacher_flags,
    shell:
        'python "$KDBENCH_SCRIPTS/train_teacher.py" {params.teacher} {params.common} --threads {threads} '
        "--model-out {output.model} --history-out {output.history} --info-out {output.info} > {log} 2>&1"


rule teacher_logits:
    input:
        data=DATA,
        model=model_file("{model}"),
    output:
        f"{RESULTS}/logits/{{model}}.npy",
    log:
        f"{RESULTS}/logs/teacher_logits/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/teacher_logits/{{model}}.tsv"
    priority: 1
    conda:
        "../envs/kdbench.yaml"
    threads: config["threads"]
    resources:
        gpu=1,
    params:
        code=CODE_HASH["teacher_logits"],  # reruns the job when its code changes
        views=augment_flags(epochs=True),
    shell:
        'python "$KDBENCH_SCRIPTS/teacher_logits.py" --data {input.data} --model {input.model} --threads {threads} '
        "{params.views} --out {output} > {log} 2>&1"
