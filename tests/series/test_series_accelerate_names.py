"""A series file's train.accelerate_config takes what `align sft --accelerate_config` takes: a path or
the name of a shipped config (align/data/accelerate/), looked up by the same function."""

from __future__ import annotations

from test_series import drive, write_series

from align.train.launch import ACCELERATE_CONFIGS


def test_dry_run_accepts_a_shipped_config_name(study):
    tmp_path, series = study
    series["train"] = {"accelerate_config": "ddp"}
    write_series(tmp_path, series)
    result = drive(tmp_path, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "big-expanded" in result.stdout and not (tmp_path / "out").exists()


def test_series_resolves_the_name_to_the_shipped_file(study):
    from align.series.spec import load_series

    tmp_path, series = study
    series["train"] = {"accelerate_config": "zero3"}
    loaded = load_series(write_series(tmp_path, series))
    assert loaded.train["accelerate_config"] == str(ACCELERATE_CONFIGS / "zero3.yaml")


def test_an_unknown_name_is_refused_in_one_line(study):
    tmp_path, series = study
    series["train"] = {"accelerate_config": "zero9"}
    write_series(tmp_path, series)
    result = drive(tmp_path, "--dry-run")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "train.accelerate_config: zero9: neither a file nor one of ddp, fsdp, single, zero2, zero3" in result.stderr
