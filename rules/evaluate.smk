rule evaluate:
    input:
        data=DATA,
        model=model_file("{model}"),
        info=f"{RESULTS}/models/{{model}}/train.json",
        train_benchmark=training_benchmark("{model}"),
        teacher_test_logits=teacher_test_logits,
    output:
        metrics=metrics_file("{model}"),
        per_class=f"{RESULTS}/eval/{{model}}/per_class.csv",
        confusion=f"{RESULTS}/eval/{{model}}/confusion_matrix.csv",
        confusion_png=report(
            f"{RESULTS}/eval/{{model}}/confusion_matrix.png",
            caption="../report/confusion_matrix.rst",
            category="Confusion matrices",
            labels={"model": "{model}"},
        ),
        predictions=f"{RESULTS}/eval/{{model}}/test_predictions.csv",
        logits=f"{RESULTS}/eval/{{model}}/test_logits.npy",
    log:
        f"{RESULTS}/logs/evaluate/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate/{{model}}.tsv"
    conda:
        "../envs/kdbench.yaml"
    threads: config["threads"]
    resources:
        gpu=1,
    params:
        code=CODE_HASH["evaluate"],  # reruns the job when its code changes
        throughput_batch=config["evaluation"]["throughput_batch"],
        agreement=lambda wildcards, input: (
            f"--teacher-test-logits {input.teacher_test_logits}"
            if input.teacher_test_logits
            else ""
        ),
    shell:
        'python "$KDBENCH_SCRIPTS/evaluate.py" --data {input.data} --model {input.model} '
        "--train-info {input.info} --train-benchmark {input.train_benchmark} --name {wildcards.model} "
        "--throughput-batch {params.throughput_batch} --flops-cache results/.cache/flops --threads {threads} --metrics-out {output.metrics} "
        "--per-class-out {output.per_class} --confusion-out {output.confusion} "
        "--confusion-png {output.confusion_png} --predictions-out {output.predictions} --logits-out {output.logits} "
        "{params.agreement} > {log} 2>&1"
