"""The judge side's small rules, one of each (NaN -> None for JSON, which judgment a record is), and checks
that hold as their comments say (no assert-only validation, log-probs in float32)."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from align.plumbing.errors import UserError
from judges.file_kinds import PAIRWISE, SINGLE, first_judgment_kind, judgment_kind
from judges.records import is_pair_file
from judges.stats import finite_or_none
from judges.trust.votes import file_kind


def test_finite_or_none_is_what_json_can_hold():
    assert [finite_or_none(x) for x in (None, math.nan, math.inf, -math.inf, np.float32("nan"))] == [None] * 5
    assert finite_or_none(3) == 3 and isinstance(finite_or_none(3), int)  # an int stays an int
    assert finite_or_none(0.25) == 0.25 and finite_or_none(np.float64(0.5)) == 0.5
    assert finite_or_none("N/A") == "N/A"
    json.dumps([finite_or_none(x) for x in (math.nan, 1.5)], allow_nan=False)


@pytest.mark.parametrize("record, kind", [
    ({"model_1": "a", "model_2": "b", "g1_winner": "tie"}, PAIRWISE),
    ({"model_1": "a"}, PAIRWISE),  # damaged: still read as pairwise, so its reader names what it lacks
    ({"question_id": 81, "model": "a", "score": 7}, SINGLE),
    ({"question_id": 81, "choices": []}, None), ({}, None)])
def test_judgment_kind_by_the_fields_that_tell_them_apart(record, kind):
    assert judgment_kind(record) == kind


def test_one_sniffing_rule_for_the_report_and_the_votes(tmp_path):
    pair, single, answers, empty = (tmp_path / n for n in ("p.jsonl", "s.jsonl", "a.jsonl", "e.jsonl"))
    pair.write_text(json.dumps({"model_1": "a", "model_2": "b", "g1_winner": "tie"}) + "\n")
    single.write_text(json.dumps({"question_id": 81, "model": "a", "score": 7}) + "\n")
    answers.write_text(json.dumps({"question_id": 81, "choices": []}) + "\n")
    empty.write_text("")
    assert [first_judgment_kind(p) for p in (pair, single, answers, empty)] == [PAIRWISE, SINGLE, None, None]
    assert [is_pair_file(str(p)) for p in (pair, single, answers, empty)] == [True, False, False, False]
    assert [file_kind(str(p)) for p in (pair, single)] == ["pair", "single"]
    with pytest.raises(UserError, match="a.jsonl:1: neither a pairwise judgment"):
        file_kind(str(answers))
    with pytest.raises(UserError, match="e.jsonl: no judgments in it"):
        file_kind(str(empty))


def test_answer_and_settings_checks_hold_under_python_O(tmp_path):
    """Records are checked with `if`, not `assert`: `python -O` must refuse the same bad files."""
    bad_answers = tmp_path / "answers.jsonl"
    bad_answers.write_text(json.dumps({"question_id": "81", "choices": [{"turns": ["hi"]}]}) + "\n")
    bad_meta = tmp_path / "meta.json"
    bad_meta.write_text("[1, 2]")
    code = ("import sys\nfrom pathlib import Path\nfrom align.plumbing.errors import UserError\n"
            "from judges.records import answer_slots\nfrom judges.answers.command import check_meta\n"
            "for call in (lambda: answer_slots(sys.argv[1]), lambda: check_meta(Path(sys.argv[2]), {})):\n"
            "    try:\n        call()\n    except UserError as err:\n        print('refused:', err)\n")
    out = subprocess.run([sys.executable, "-O", "-c", code, str(bad_answers), str(bad_meta)],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0].startswith(f"refused: {bad_answers}:1: expected FastChat model_answer fields"), out
    assert out[1].startswith(f"refused: {bad_meta}: not a JSON object"), out


def test_logprobs_in_float32_one_sequence_at_a_time_equal_log_softmax():
    import torch

    from judges.measures.logprobs import Sequence, sequence_logprobs

    torch.manual_seed(0)
    logits = (torch.randn(3, 6, 50) * 4).to(torch.bfloat16)

    class Model(torch.nn.Module):  # a bf16 "model" whose logits are fixed
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, input_ids, attention_mask, use_cache):
            return type("Out", (), {"logits": logits[:input_ids.shape[0], :input_ids.shape[1]]})

    seqs = [Sequence([1, 2, 3, 4, 5, 6], [0, 0, 1, 1, 1, 1]), Sequence([7, 8, 9], [0, 1, 1]),
            Sequence([3, 1, 4, 1, 5], [1, 1, 1, 1, 1])]
    got = sequence_logprobs(Model(), seqs, batch_size=3, pad_id=0)
    ids = torch.zeros(3, 6, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s.ids)] = torch.tensor(s.ids)
    reference = torch.log_softmax(logits[:, :-1].float(), dim=-1).gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    for i, s in enumerate(seqs):
        counted = torch.tensor(s.mask[1:], dtype=torch.bool)
        want = reference[i, :len(s.ids) - 1][counted].sum().item()
        assert got[i][1] == int(counted.sum()) and got[i][0] == pytest.approx(want, abs=1e-4)


@pytest.mark.parametrize("value", ["1", "true", "YES", "On", "0", "", " 1", "false", "offline"])
@pytest.mark.parametrize("name", ["HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"])
def test_offline_flag_reads_the_environment_as_huggingface_hub_does(monkeypatch, name, value):
    """One offline rule for training checks, eval tasks and held-out rows: huggingface_hub's own reading."""
    from huggingface_hub import constants

    from align.plumbing.files import offline_flag

    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv(name, value)
    assert offline_flag() == (name if constants._is_true(value) else None)
