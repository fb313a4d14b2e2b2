rule summarize:
    input:
        info=DATA_INFO,
        metrics=[metrics_file(name) for name in TEACHERS + STUDENTS],
    output:
        SUMMARY,
    params:
        title=shlex.quote(config["run_name"]),
    log:
        "results/logs/summarize.log",
    conda:
        "../envs/kdbench.yaml"
    shell:
        "python \"$KDBENCH_SCRIPTS/summarize.py\" --metrics {input.metrics} --data-info {input.info} --title {params.title} "
        "--out {output} > {log} 2>&1"
