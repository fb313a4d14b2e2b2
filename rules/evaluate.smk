rule evaluate:
    input:
        data=DATA,
        model=model_file("{model}"),
        info="results/models/{model}/train.json",
        train_benchmark=training_benchmark("{model}"),
    output:
        metrics=metrics_file("{model}"),
        per_class="results/eval/{model}/per_class.csv",
        confusion="results/eval/{model}/confusion_matrix.csv",
        confusion_png=report(
            "results/eval/{model}/confusion_matrix.png",
            caption="../report/confusion_matrix.rst",
            category="Confusion matrices",
            labels={"model": "{model}"},
        ),
        predictions="results/eval/{model}/test_predictions.csv",
    params:
        throughput_batch=config["evaluation"]["throughput_batch"],
    threads: config["threads"]
    resources:
        gpu=1,
    log:
        "results/logs/evaluate/{model}.log",
    benchmark:
        "results/benchmarks/evaluate/{model}.tsv"
    conda:
        "../envs/kdbench.yaml"
    shell:
        "python \"$KDBENCH_SCRIPTS/evaluate.py\" --data {input.data} --model {input.model} "
        "--train-info {input.info} --train-benchmark {input.train_benchmark} --name {wildcards.model} "
        "--throughput-batch {params.throughput_batch} --threads {threads} --metrics-out {output.metrics} "
        "--per-class-out {output.per_class} --confusion-out {output.confusion} "
        "--confusion-png {output.confusion_png} --predictions-out {output.predictions} > {log} 2>&1"
