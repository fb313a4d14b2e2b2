rule fetch_data:
    output:
        data=DATA,
        info=DATA_INFO,
    params:
        source=config["data"]["source"],
        path=f"--path {shlex.quote(str(config['data']['path']))}" if config["data"].get("path") else "",
        sizes=(
            f"--train-size {config['data']['train_size']} --val-size {config['data']['val_size']} "
            f"--test-size {config['data']['test_size']}"
        ),
        checksum="" if config["data"].get("verify_checksum", True) else "--no-verify-checksum",
        seed=TEACHER_SEED,
    log:
        "results/logs/fetch_data.log",
    benchmark:
        "results/benchmarks/fetch_data.tsv"
    conda:
        "../envs/kdbench.yaml"
    shell:
        "python \"$KDBENCH_SCRIPTS/fetch_data.py\" --source {params.source} {params.path} {params.sizes} {params.checksum} "
        "--seed {params.seed} --out {output.data} --info-out {output.info} > {log} 2>&1"
