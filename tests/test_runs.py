"""The runs table: one row per model, stable ids, settings carried as data (never parsed from names)."""

import copy
import json

import pytest
import yaml
from conftest import ROOT

from kdbench import KdbenchError, runs
from kdbench.config import config_errors

CONFIG = yaml.safe_load((ROOT / "config.yaml").read_text())
SCHEMA = ROOT / "schemas" / "config.schema.yaml"


def with_changes(**methods):
    config = copy.deepcopy(CONFIG)
    config["distillation"]["methods"] = methods
    return config


def test_default_config_is_the_reference_experiment():
    table = runs.expand(CONFIG)
    assert table["role"].tolist() == ["teacher", "teacher", "baseline", "distilled", "distilled"]
    assert table["teacher"].tolist()[:2] == ["frozen", "finetuned"]
    assert set(table["architecture"]) == {"resnet50", "resnet18"}
    distilled = table[table["role"] == "distilled"]
    assert [json.loads(s) for s in distilled["settings"]] == [{"alpha": 0.3, "temperature": 7.0}] * 2
    assert table["id"].is_unique


def test_ids_are_stable_when_the_sweep_grows():
    single = runs.expand(CONFIG).set_index("settings")
    swept = runs.expand(with_changes(kd={"alpha": [0.3, 0.5], "temperature": [7, 2]})).set_index("settings")
    key = '{"alpha": 0.3, "temperature": 7.0}'
    assert set(single.loc[key, "id"]) <= set(swept.loc[key, "id"])
    assert len(swept[swept["role"] == "distilled"]) == 2 * 4  # two teachers x four settings


def test_each_value_is_trained_as_asked_and_close_values_get_their_own_run():
    table = runs.expand(with_changes(kd={"alpha": [0.3, 0.30000001], "temperature": 7}))
    distilled = table[(table["role"] == "distilled") & (table["teacher"] == "frozen")]
    assert [json.loads(s)["alpha"] for s in distilled["settings"]] == [0.3, 0.30000001]
    assert distilled["id"].nunique() == 2


def test_one_value_written_twice_is_refused_before_any_job():
    config = with_changes(kd={"alpha": 0.3, "temperature": [7, 7.0]})
    assert any("non-unique" in message or "unique" in message for message in config_errors(config, SCHEMA))
    with pytest.raises(KdbenchError, match="share the id"):
        runs.expand(config)


def test_seeds_repeat_students_but_not_teachers():
    config = copy.deepcopy(CONFIG)
    config["seeds"] = [0, 1, 2]
    table = runs.expand(config)
    assert (table["role"] == "teacher").sum() == 2 and set(table.loc[table["role"] == "teacher", "seed"]) == {0}
    assert (table["role"] == "baseline").sum() == 3 and (table["role"] == "distilled").sum() == 6


def test_a_null_entry_drops_a_teacher_or_method():
    config = copy.deepcopy(CONFIG)
    config["teachers"]["finetuned"] = None
    table = runs.expand(config)
    assert "finetuned" not in set(table["teacher"])
    config["distillation"]["methods"]["kd"] = None
    assert set(runs.expand(config)["role"]) == {"teacher", "baseline"}


def test_every_method_expands_with_its_defaults():
    table = runs.expand(with_changes(kd={}, dkd={}, fitnets={}, at={}))
    distilled = table[table["role"] == "distilled"]
    assert sorted(distilled["method"].unique()) == ["at", "dkd", "fitnets", "kd"]
    dkd = json.loads(distilled.loc[distilled["method"] == "dkd", "settings"].iloc[0])
    assert dkd["beta"] == 8.0 and dkd["temperature"] == 4.0


def test_tsv_round_trip(tmp_path):
    table = runs.expand(with_changes(kd={"alpha": [0.1, 0.9], "temperature": 4}))
    runs.write_tsv(table, tmp_path / "runs.tsv")
    back = runs.read_tsv(tmp_path / "runs.tsv")
    assert back.equals(table.astype({column: str for column in table.columns if column not in ("seed", "upsample")}))
