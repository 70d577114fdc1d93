"""A series' `eval.allow_code` (issue 29 item 3): task folders' Python helpers run only when the series file
says so; the key is passed on as `align eval --allow-code`, and anything but true/false is refused."""

from __future__ import annotations

import pytest
from test_series import write_series
from test_series_eval import with_eval

from align.plumbing.errors import UserError
from align.series.spec import load_series
from align.series.stages import STAGES


def test_allow_code_is_passed_to_align_eval_only_when_set(study):
    tmp_path, series = study
    s = load_series(write_series(tmp_path, with_eval(tmp_path, series)))
    assert "--allow-code" not in STAGES["base_eval"].command(s, "small-init").args
    s = load_series(write_series(tmp_path, with_eval(tmp_path, series, allow_code=True)))
    assert "--allow-code" in STAGES["base_eval"].command(s, "small-init").args


def test_allow_code_must_be_true_or_false(study):
    tmp_path, series = study
    with pytest.raises(UserError, match="eval.allow_code: expected true or false, got 'yes please'"):
        load_series(write_series(tmp_path, with_eval(tmp_path, series, allow_code="yes please")))
