"""A series refuses what would fail days later, up front, and says why a stage cannot run
(issue 26.11): an entry name too long for the file names it becomes; a report after a judge
stage that wrote nothing."""

from __future__ import annotations

import pytest
from test_series import calls, drive, write_series

from align.plumbing.errors import UserError
from align.series.spec import load_series


@pytest.mark.parametrize("length", [245, 240])
def test_entry_name_too_long_for_its_files_is_refused_up_front(study, length):
    tmp_path, series = study
    long_name = "m" * length
    series["models"][2]["name"] = long_name
    with pytest.raises(UserError, match=rf"models\[2\] \(m+\)\.name: {length} characters: too long"):
        load_series(write_series(tmp_path, series))


def test_entry_name_that_fits_every_file_name_passes(study):
    tmp_path, series = study
    series["models"][2]["name"] = "m" * 200
    assert load_series(write_series(tmp_path, series)).models[2].name == "m" * 200


def test_report_after_a_judge_stage_that_wrote_nothing_says_so(study):
    tmp_path, series = study
    write_series(tmp_path, series)
    result = drive(tmp_path, env={"FAKE_FAIL": "_series:judge"})
    assert result.returncode == 1
    assert ("_series", "report") not in calls(tmp_path)  # not started on no input
    assert "error: report: not finished: nothing judged" in result.stderr, result.stderr
    assert "usage:" not in result.stderr
