rule summarize:
    input:
        runs=RUNS_TSV,
        info=DATA_INFO,
        metrics=[metrics_file(model) for model in RUNS.index],
        predictions=[
            f"{RESULTS}/eval/{model}/test_predictions.csv" for model in RUNS.index
        ],
        histories=[f"{RESULTS}/models/{model}/history.csv" for model in RUNS.index],
        confusion_pngs=[
            f"{RESULTS}/eval/{model}/confusion_matrix.png" for model in RUNS.index
        ],
    output:
        summary=report(SUMMARY, caption="../report/summary.rst", category="Summary"),
        csv=report(
            f"{RESULTS}/summary.csv",
            caption="../report/summary_csv.rst",
            category="Summary",
        ),
        accuracy_vs_cost=report(
            f"{RESULTS}/figures/accuracy_vs_cost.png",
            caption="../report/accuracy_vs_cost.rst",
            category="Figures",
        ),
        training_curves=report(
            f"{RESULTS}/figures/training_curves.png",
            caption="../report/training_curves.rst",
            category="Figures",
        ),
        sweep_heatmap=(
            [
                report(
                    f"{RESULTS}/figures/sweep_heatmap.png",
                    caption="../report/sweep_heatmap.rst",
                    category="Figures",
                )
            ]
            if HAS_GRID
            else []
        ),
    log:
        f"{RESULTS}/logs/summarize.log",
    conda:
        "../envs/kdbench.yaml"
    params:
        code=CODE_HASH["summarize"],  # reruns the job when its code changes
        title=shlex.quote(config["run_name"]),
        expect=shlex.quote(
            json.dumps(
                {
                    **{
                        key: config["data"][key]
                        for key in ("train_size", "val_size", "test_size")
                    },
                    "dataset": config["data"]["dataset"],
                    **{
                        key: config["train"].get(key)
                        for key in ("epochs", "batch_size", "precision", "augment")
                        + RECIPE_KEYS
                    },
                    "teacher_augment": {
                        name: bool(entry.get("augment"))
                        for name, entry in TEACHERS.items()
                    },
                    # every run on the config's backend (only named off the default: same command line)
                    **(
                        {}
                        if config["train"]["backend"] == "tensorflow"
                        else {"backend": config["train"]["backend"]}
                    ),
                }
            )
        ),
        description=shlex.quote(config.get("description", "")),
        sweep_heatmap=(
            f"--sweep-heatmap {RESULTS}/figures/sweep_heatmap.png" if HAS_GRID else ""
        ),
    shell:
        'python "$KDBENCH_SCRIPTS/summarize.py" --runs {input.runs} --metrics {input.metrics} '
        "--predictions {input.predictions} --histories {input.histories} --confusion-pngs {input.confusion_pngs} "
        "--data-info {input.info} --expect {params.expect} --title {params.title} --description {params.description} "
        "--out {output.summary} --csv-out {output.csv} --accuracy-vs-cost {output.accuracy_vs_cost} "
        "--training-curves {output.training_curves} {params.sweep_heatmap} > {log} 2>&1"
