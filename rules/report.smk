rule summarize:
    input:
        info=DATA_INFO,
        metrics=[metrics_file(name) for name in TEACHERS + STUDENTS],
        predictions=[f"results/eval/{name}/test_predictions.csv" for name in TEACHERS + STUDENTS],
        histories=[f"results/models/{name}/history.csv" for name in TEACHERS + STUDENTS],
    output:
        summary=report(SUMMARY, caption="../report/summary.rst", category="Summary"),
        csv=report("results/summary.csv", caption="../report/summary_csv.rst", category="Summary"),
        accuracy_vs_cost=report(
            "results/figures/accuracy_vs_cost.png",
            caption="../report/accuracy_vs_cost.rst",
            category="Figures",
        ),
        training_curves=report(
            "results/figures/training_curves.png",
            caption="../report/training_curves.rst",
            category="Figures",
        ),
        sweep_heatmap=report(
            "results/figures/sweep_heatmap.png",
            caption="../report/sweep_heatmap.rst",
            category="Figures",
        ),
    params:
        title=shlex.quote(config["run_name"]),
    log:
        "results/logs/summarize.log",
    conda:
        "../envs/kdbench.yaml"
    shell:
        "python \"$KDBENCH_SCRIPTS/summarize.py\" --metrics {input.metrics} --predictions {input.predictions} "
        "--histories {input.histories} --data-info {input.info} --title {params.title} "
        "--out {output.summary} --csv-out {output.csv} --accuracy-vs-cost {output.accuracy_vs_cost} "
        "--training-curves {output.training_curves} --sweep-heatmap {output.sweep_heatmap} > {log} 2>&1"
