"""Alpha x temperature grids and honest model selection: choose on validation accuracy, never on test."""

from __future__ import annotations

import pandas as pd


def select_settings(runs: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """Best (alpha, temperature) per teacher by mean validation accuracy over seeds.

    Ties go to the smaller alpha, then the smaller temperature, so the choice is deterministic.
    Test accuracy is not looked at.
    """
    kd = runs[runs["kind"] == "student-kd"].dropna(subset=["val_accuracy"])
    means = kd.groupby(["teacher", "alpha", "temperature"], as_index=False)["val_accuracy"].mean()
    ranked = means.sort_values(["teacher", "val_accuracy", "alpha", "temperature"],
                               ascending=[True, False, True, True])
    return {row.teacher: (float(row.alpha), float(row.temperature))
            for row in ranked.groupby("teacher").head(1).itertuples()}


def validation_grid(runs: pd.DataFrame, teacher: str) -> pd.DataFrame:
    """Mean validation accuracy with alpha as rows and temperature as columns."""
    kd = runs[(runs["kind"] == "student-kd") & (runs["teacher"] == teacher)]
    return kd.pivot_table(index="alpha", columns="temperature", values="val_accuracy", aggfunc="mean")


def validation_grids(runs: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """validation_grid for every teacher that has distilled students, in name order."""
    return {teacher: validation_grid(runs, teacher) for teacher in sorted(set(runs["teacher"].dropna()))}
