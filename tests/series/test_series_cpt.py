"""The series' cpt stage (continued pretraining between the base checkpoint and SFT): token budgets by the
study's rules, the dry run's compute totals, and the stage in the runner (stand-in stages)."""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest
from conftest import REPO
from test_series import calls, drive, kill_stage, manifest, start_until_hung, write_series

from align.plumbing.errors import UserError
from align.series import pretraining
from align.series.spec import load_series

STUDY = REPO / "recipes" / "series" / "staged-study.yaml"


def study_rows(convention: str) -> tuple[list[str], dict[str, tuple[int, float]]]:
    series = load_series(STUDY)
    series.cpt["params"] = convention
    names = [e.name for e in series.models]
    budgets = {n: (pretraining.cpt_tokens(series, series.entry(n))[0], pretraining.cpt_flops(series, series.entry(n)))
               for n in names}
    return pretraining.cpt_rows(series, names)[0], budgets


def test_the_study_file_reproduces_its_tokens_and_zflops():
    rows, budgets = study_rows("nominal")
    assert {n: t for n, (t, _) in budgets.items()} == {
        "staged-1b": 40e9, "staged-2b": 60e9, "staged-4b": 120e9, "staged-8b": 240e9,
        "scratch-1b": 40e9, "scratch-2b": 80e9, "scratch-4b": 160e9, "scratch-8b": 320e9}
    scratch = [budgets[f"scratch-{s}"][1] for s in ("1b", "2b", "4b", "8b")]
    assert scratch == pytest.approx([0.24e21, 0.96e21, 3.84e21, 15.36e21])
    staged = sum(budgets[f"staged-{s}"][1] for s in ("1b", "2b", "4b", "8b"))
    assert staged == pytest.approx(15.36e21) and staged == pytest.approx(scratch[-1])  # the chain costs the 8B
    assert sum(scratch) == pytest.approx(20.4e21)
    assert rows[-1].startswith("pretraining total 35.8 ZFLOPs")
    assert "by construction: staged 15.4 ZFLOPs" in rows[-1] and "scratch 20.4 ZFLOPs" in rows[-1]
    assert "staged-8b: cpt N=8e+09 D=2.4e+11 (staged" in rows[3] and "with its ancestors 1.54e+22" in rows[3]


def test_exact_counts_of_the_study_shapes_do_not_give_its_numbers():
    """N from the shapes (meta-device counts): without embeddings 20.7 vs 15.5, with them 23.3 vs 17.1 ZFLOPs;
    only the nominal sizes give the study's 20.4 vs 15.4 (the file's `params: nominal`)."""
    rows, _ = study_rows("non_embedding")
    assert "staged 15.5 ZFLOPs" in rows[-1] and "scratch 20.7 ZFLOPs" in rows[-1]
    rows, _ = study_rows("total")
    assert "staged 17.1 ZFLOPs" in rows[-1] and "scratch 23.3 ZFLOPs" in rows[-1]


@pytest.fixture
def staged(study):
    """The test series with cpt stages: small-scratch (given) -> cpt (5000 tokens); small-init (a random init
    of its shape) -> cpt (2x Chinchilla, scaled); big-expanded grown from small-init's cpt output -> cpt (staged)."""
    tmp_path, spec = study
    (tmp_path / "cpt.yaml").write_text("max_length: 64\nper_device_train_batch_size: 2\nbf16: false\n")
    spec["cpt"] = {"recipe": str(tmp_path / "cpt.yaml"), "scale": 0.01}
    models = {m["name"]: m for m in spec["models"]}
    models["small-scratch"]["cpt"] = {"tokens": 5000}
    models["big-expanded"]["cpt"] = {"tokens": "staged"}
    models["big-expanded"]["grow"]["from"] = "small-init"
    models["small-init"]["cpt"] = {"tokens": "chinchilla2x"}
    write_series(tmp_path, spec)
    return tmp_path, spec


def argv_of(tmp_path, entry: str, stage: str) -> list[str]:
    return next(c["argv"] for c in map(json.loads, (tmp_path / "calls.jsonl").read_text().splitlines())
                if (c["entry"], c["stage"]) == (entry, stage))


def test_cpt_runs_between_base_and_sft_and_a_grow_starts_from_its_output(staged):
    tmp_path, _ = staged
    assert drive(tmp_path).returncode == 0
    seen = calls(tmp_path)
    assert seen.index(("small-scratch", "cpt")) < seen.index(("small-scratch", "sft"))
    assert seen.index(("small-init", "cpt")) < seen.index(("big-expanded", "base")) < seen.index(
        ("big-expanded", "cpt")) < seen.index(("big-expanded", "sft"))
    out = tmp_path / "out"
    grow = argv_of(tmp_path, "big-expanded", "base")
    assert grow[grow.index("--from") + 1] == str(out / "small-init" / "cpt")
    sft = argv_of(tmp_path, "big-expanded", "sft")
    assert sft[sft.index("--model_name_or_path") + 1] == str(out / "big-expanded" / "cpt")
    init = argv_of(tmp_path, "small-init", "base")  # an init copies a shape: from the base, not the cpt output
    assert init[init.index("--like") + 1] == str(tmp_path / "ckpt-small")
    series = load_series(tmp_path / "series.yaml")
    small, big = series.entry("small-init"), series.entry("big-expanded")
    n_small, n_big = pretraining.parameters(series, small), pretraining.parameters(series, big)
    staged_tokens = round((0.01 * 40 * n_big * 6 * n_big - 6 * n_small * round(0.4 * n_small)) / (6 * n_big))
    cpt = argv_of(tmp_path, "big-expanded", "cpt")
    assert cpt[cpt.index("--max_tokens") + 1] == str(staged_tokens)
    twin = argv_of(tmp_path, "small-init", "cpt")
    assert twin[twin.index("--max_tokens") + 1] == str(round(0.4 * n_small))
    sources = json.loads((out / "pretraining.json").read_text())
    assert [link["entry"] for link in sources["entries"]["big-expanded"]["chain"]] == ["small-init", "big-expanded"]
    report = argv_of(tmp_path, "_series", "report")
    assert report[report.index("--pretraining") + 1] == str(out / "pretraining.json")
    assert manifest(tmp_path)["big-expanded"]["cpt"]["state"] == "done"

    assert drive(tmp_path).returncode == 0  # everything current: nothing runs again
    assert calls(tmp_path) == []


def test_a_changed_cpt_budget_reruns_it_and_everything_grown_from_it(staged):
    tmp_path, spec = staged
    assert drive(tmp_path).returncode == 0
    spec["models"][2]["cpt"]["tokens"] = 6000  # small-init, the source big-expanded is grown from
    write_series(tmp_path, spec)
    assert drive(tmp_path).returncode == 0
    rerun = set(calls(tmp_path))
    assert {("small-init", "cpt"), ("small-init", "sft"), ("big-expanded", "base"), ("big-expanded", "cpt"),
            ("big-expanded", "sft")} <= rerun
    assert not any(entry == "small-scratch" and stage in ("cpt", "sft") for entry, stage in rerun)
    assert ("small-init", "base") not in rerun


def test_an_entry_without_cpt_goes_from_its_base_to_sft(study):
    tmp_path, spec = study
    write_series(tmp_path, spec)
    assert drive(tmp_path).returncode == 0
    assert not any(stage == "cpt" for _, stage in calls(tmp_path))
    sft = argv_of(tmp_path, "big-expanded", "sft")
    assert sft[sft.index("--model_name_or_path") + 1] == str(tmp_path / "out" / "big-expanded" / "base")
    assert not (tmp_path / "out" / "pretraining.json").exists()


@pytest.mark.parametrize("block, message", [
    ({"tokens": "chinchilla"}, "cpt.tokens: expected a whole number of tokens or one of chinchilla2x, staged"),
    ({"tokens": "4e10"}, "YAML reads 4e10 as text"),
    ({"tokens": 0}, "cpt.tokens: expected a whole number"),
    ({"tokns": 5}, "cpt: unknown key 'tokns'"),
    ({"tokens": 5, "recipe": "/nowhere.yaml"}, "cpt.recipe: file '/nowhere.yaml' not found"),
])
def test_bad_entry_cpt_blocks_are_one_line_errors(study, block, message):
    tmp_path, spec = study
    (tmp_path / "cpt.yaml").write_text("max_length: 64\n")
    spec["cpt"] = {"recipe": str(tmp_path / "cpt.yaml")}
    spec["models"][0]["cpt"] = block
    with pytest.raises(UserError, match="models\\[0\\] \\(small-scratch\\)"):
        try:
            load_series(write_series(tmp_path, spec))
        except UserError as err:
            assert message in str(err)
            raise


def test_no_recipe_anywhere_and_unknown_conventions_are_refused(study):
    tmp_path, spec = study
    spec["models"][0]["cpt"] = {"tokens": 5}
    with pytest.raises(UserError, match="cpt: missing required key 'recipe'"):
        load_series(write_series(tmp_path, spec))
    spec["cpt"] = {"params": "embedding"}
    with pytest.raises(UserError, match="cpt.params: expected one of nominal, non_embedding, total"):
        load_series(write_series(tmp_path, spec))


def test_a_staged_budget_already_spent_or_unknown_is_refused(staged):
    tmp_path, spec = staged
    spec["models"][2]["cpt"]["tokens"] = 10 ** 9  # the small model alone outspends the big one's scratch budget
    series = load_series(write_series(tmp_path, spec))
    with pytest.raises(UserError, match="big-expanded.*staged: its ancestors already spent"):
        pretraining.cpt_tokens(series, series.entry("big-expanded"))
    spec["models"][1]["grow"]["from"] = "small-scratch"  # a given checkpoint: trained elsewhere, compute unknown
    series = load_series(write_series(tmp_path, spec))
    with pytest.raises(UserError, match="big-expanded\\).cpt.tokens: staged: unknown \\(small-scratch is a given"):
        pretraining.cpt_args(series, "big-expanded", "m", "o")


def test_an_entry_pretrained_only_is_an_ancestor_and_nothing_more(staged):
    """`post_train: false` (the study's staged 1B has no MT-Bench score): base and cpt, then nothing; the
    series still finishes (exit 0) and the entry grown from it goes on."""
    tmp_path, spec = staged
    spec["models"][2]["post_train"] = False  # small-init, the source of big-expanded
    write_series(tmp_path, spec)
    assert drive(tmp_path).returncode == 0
    seen = calls(tmp_path)
    assert [s for e, s in seen if e == "small-init"] == ["base", "cpt"]
    assert ("big-expanded", "answer") in seen
    judge = argv_of(tmp_path, "_series", "judge")
    assert not any("small-init" in a for a in judge)
    spec["models"][2]["post_train"] = "no"
    with pytest.raises(UserError, match="post_train: expected true or false"):
        load_series(write_series(tmp_path, spec))


def test_a_killed_cpt_stage_resumes_from_its_checkpoint(staged):
    tmp_path, _ = staged
    proc, stage_pid = start_until_hung(tmp_path, "big-expanded:cpt", stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL, start_new_session=True)
    checkpoint = tmp_path / "out" / "big-expanded" / "cpt" / "checkpoint-1"
    assert checkpoint.exists()
    os.killpg(proc.pid, signal.SIGKILL)  # the runner, then its stage: like a lost node
    proc.wait()
    kill_stage(stage_pid)
    assert manifest(tmp_path)["big-expanded"]["cpt"]["state"] == "running"
    assert drive(tmp_path).returncode == 0
    rerun = calls(tmp_path)
    assert ("big-expanded", "base") not in rerun and ("small-init", "cpt") not in rerun
    assert "--resume_from_checkpoint" in argv_of(tmp_path, "big-expanded", "cpt")
    assert checkpoint.exists()  # resumed, not wiped
