"""`align series --only STAGES` as one job of a chain (issue 32.4): its exit status says whether the stages
it was asked for are done, so a Slurm `afterok` dependency fires on 0 and only on 0 (stand-in stages)."""

from __future__ import annotations

from test_series import calls, drive, write_series


def error_lines(result) -> list[str]:
    return [ln for ln in result.stderr.splitlines() if ln.strip()]


def test_only_that_finishes_what_it_was_asked_exits_0_and_names_the_rest(study):
    tmp_path, series = study
    write_series(tmp_path, series)
    result = drive(tmp_path, "--only", "prepare,grow,sft", "--models", "big-expanded")
    assert result.returncode == 0, result.stderr  # was 1: "dpo is not done and not selected by --only"
    assert set(calls(tmp_path)) == {("_series", "prepare"), ("big-expanded", "base"), ("big-expanded", "sft")}
    rest = [ln for ln in result.stdout.splitlines() if "not done (not selected by --only)" in ln]
    assert len(rest) == 1 and "big-expanded: dpo, answer, judge" in rest[0] and rest[0].endswith("; report")
    assert "every stage asked for is done" in result.stdout
    again = drive(tmp_path, "--only", "sft", "--models", "big-expanded")  # current: skipped, still done
    assert again.returncode == 0 and calls(tmp_path) == []


def test_a_stage_whose_inputs_are_not_done_refuses_in_one_line_and_runs_nothing(study):
    tmp_path, series = study
    write_series(tmp_path, series)
    fresh = drive(tmp_path, "--only", "dpo")
    assert fresh.returncode == 2 and calls(tmp_path) == []
    assert error_lines(fresh) == [
        "error: --only dpo: cannot run small-scratch: dpo; big-expanded: dpo; small-init: dpo: input(s) not current "
        "and not selected by --only: prepare:data; run them first or add them to --only"]

    assert drive(tmp_path, "--only", "prepare").returncode == 0
    result = drive(tmp_path, "--only", "dpo", "--models", "small-scratch")
    assert result.returncode == 2 and calls(tmp_path) == []
    assert error_lines(result) == ["error: --only dpo: cannot run small-scratch: dpo: input(s) not current and not "
                                   "selected by --only: small-scratch: sft; run them first or add them to --only"]
    assert drive(tmp_path, "--only", "grow", "--models", "small-init").returncode == 0  # from a given checkpoint


def test_grown_from_an_entry_outside_models_whose_base_is_not_built_refuses(study):
    tmp_path, series = study
    series["models"].append({"name": "big-from-init", "size": "B", "construction": "expanded",
                             "grow": {"from": "small-init", "spec": str(tmp_path / "grow.yaml"), "method": "aki"}})
    write_series(tmp_path, series)
    result = drive(tmp_path, "--only", "prepare,grow", "--models", "big-from-init")
    assert result.returncode == 2 and calls(tmp_path) == [("_series", "prepare")] * 2
    assert error_lines(result) == ["error: --only prepare,base: cannot run big-from-init: base: input(s) not current "
                                   "and not selected by --only: small-init: base; run them first or add them to --only"]
    assert drive(tmp_path, "--only", "grow", "--models", "small-init").returncode == 0
    assert drive(tmp_path, "--only", "grow", "--models", "big-from-init").returncode == 0
    assert calls(tmp_path) == [("big-from-init", "base")]


def test_a_chain_of_single_stage_jobs_each_exits_0_and_a_failed_one_exits_1(study):
    tmp_path, series = study
    write_series(tmp_path, series)
    for stages in ("prepare", "sft", "dpo"):
        result = drive(tmp_path, "--only", stages, "--models", "small-scratch")
        assert result.returncode == 0, (stages, result.stderr)
    assert calls(tmp_path) == [("small-scratch", "dpo")]
    failed = drive(tmp_path, "--only", "answer", "--models", "small-scratch",
                   env={"FAKE_FAIL": "small-scratch:answer"})
    assert failed.returncode == 1 and "small-scratch: stage answer failed (exit status 3)" in failed.stderr
    assert drive(tmp_path, "--only", "answer", "--models", "small-scratch").returncode == 0


def test_a_stage_whose_input_is_stale_and_not_selected_refuses(study):
    tmp_path, series = study
    write_series(tmp_path, series)
    assert drive(tmp_path, "--models", "small-scratch").returncode == 0
    series["sft"]["overrides"]["learning_rate"] = 1.0e-5  # SFT's outputs no longer match its settings
    write_series(tmp_path, series)
    result = drive(tmp_path, "--only", "dpo", "--models", "small-scratch")
    assert result.returncode == 2 and calls(tmp_path) == []
    assert error_lines(result) == ["error: --only dpo: cannot run small-scratch: dpo: input(s) not current and not "
                                   "selected by --only: stale: small-scratch: sft; run them first or add them to "
                                   "--only"]
