rule evaluate:
    input:
        data=DATA,
        model=model_file("{model}"),
        info="results/models/{model}/train.json",
    output:
        metrics=metrics_file("{model}"),
        per_class="results/eval/{model}/per_class.csv",
        confusion="results/eval/{model}/confusion_matrix.csv",
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
        "python \"$KDBENCH_SCRIPTS/evaluate.py\" --data {input.data} --model {input.model} --train-info {input.info} "
        "--name {wildcards.model} --threads {threads} --metrics-out {output.metrics} "
        "--per-class-out {output.per_class} --confusion-out {output.confusion} > {log} 2>&1"
