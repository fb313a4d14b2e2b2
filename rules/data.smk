rule fetch_data:
    input:
        user_file(config["data"].get("path")),
    output:
        data=DATA,
        info=DATA_INFO,
    log:
        f"{RESULTS}/logs/fetch_data.log",
    benchmark:
        f"{RESULTS}/benchmarks/fetch_data.tsv"
    conda:
        "../envs/kdbench.yaml"
    params:
        code=CODE_HASH["fetch_data"],  # reruns the job when its code changes
        dataset=config["data"]["dataset"],
        source=config["data"]["source"],
        path=(
            f"--path {shlex.quote(str(config['data']['path']))}"
            if config["data"].get("path")
            else ""
        ),
        sizes=(
            f"--train-size {config['data']['train_size']} --val-size {config['data']['val_size']} "
            f"--test-size {config['data']['test_size']}"
        ),
        checksum=(
            ""
            if config["data"].get("verify_checksum", True)
            else "--no-verify-checksum"
        ),
        seed=config["seeds"][0],
    shell:
        'python "$KDBENCH_SCRIPTS/fetch_data.py" --dataset {params.dataset} --source {params.source} {params.path} '
        "{params.sizes} {params.checksum} --seed {params.seed} --out {output.data} --info-out {output.info} "
        "> {log} 2>&1"


rule runs_table:
    output:
        RUNS_TSV,
    log:
        f"{RESULTS}/logs/runs_table.log",
    params:
        table=RUNS.to_csv(sep="\t", index=False),  # a changed table rewrites the file
    run:
        from kdbench.runs import write_tsv

        write_tsv(RUNS, output[0])
