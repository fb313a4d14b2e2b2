#!/usr/bin/env python
"""Aggregate every model's metrics.json into the comparison table results/summary.md."""

import argparse

from kdbench import cli


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--metrics", nargs="+", required=True, help="metrics.json files from evaluate.py")
    parser.add_argument("--data-info", required=True, help="JSON written by fetch_data.py")
    parser.add_argument("--title", default="kdbench run", help="run name shown in the header")
    parser.add_argument("--out", required=True, help="output markdown file")
    args = parser.parse_args()

    from kdbench.io import atomic_path, read_json
    from kdbench.report import build_summary

    records = [read_json(path) for path in args.metrics]
    text = build_summary(args.title, read_json(args.data_info), records)
    with atomic_path(args.out) as tmp:
        tmp.write_text(text)
    print(text)


if __name__ == "__main__":
    cli.run(main)
