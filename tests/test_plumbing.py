import json

import pytest

from align.cli import main
from align.plumbing.accounting import count_config_parameters
from align.plumbing.errors import UserError
from align.plumbing.files import (
    append_jsonl,
    atomic_directory,
    atomic_write_json,
    atomic_write_jsonl,
    check_output_dir,
    check_output_file,
    name_as_file_stem,
    read_jsonl,
    read_yaml_mapping,
)
from align.plumbing.redact import redact, redact_argv
from judges.questions import load_judge_prompts, load_questions, load_reference_answers, temperature_for


def test_redact_drops_secrets_at_any_depth():
    out = redact({"api_key": "sk-123", "nested": [{"OPENAI_API_KEY": "sk-9", "lr": 1}], "hf_token": ""})
    assert out["api_key"] == "<redacted>"
    assert out["nested"][0] == {"OPENAI_API_KEY": "<redacted>", "lr": 1}
    assert "sk-" not in json.dumps(out)


def test_redact_keeps_counts_and_tokenizer_fields():
    card = {"num_input_tokens_seen": 512, "tokens_trained": 512, "max_new_token": 1024,
            "pad_token": "<|endoftext|>", "hub_token": "hf_abc", "access_token": "x", "token": "t",
            "client_secret": "s", "Authorization": "Bearer k"}
    out = redact(card)
    assert {k: out[k] for k in ("num_input_tokens_seen", "tokens_trained", "max_new_token", "pad_token")} == \
        {"num_input_tokens_seen": 512, "tokens_trained": 512, "max_new_token": 1024, "pad_token": "<|endoftext|>"}
    assert all(out[k] == "<redacted>" for k in ("hub_token", "access_token", "token", "client_secret",
                                                 "Authorization"))


def test_redact_argv_hides_secret_values_only():
    assert redact_argv(["judge", "--api-key", "sk-123", "--parallel", "8"]) == \
        ["judge", "--api-key", "<redacted>", "--parallel", "8"]
    assert redact_argv(["--hub_token=hf_abc", "--max-tokens", "2048", "--max-new-token", "1024"]) == \
        ["--hub_token=<redacted>", "--max-tokens", "2048", "--max-new-token", "1024"]


def test_config_parameter_count_matches_smollm2():
    smollm2_135m = {"vocab_size": 49152, "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
                    "num_attention_heads": 9, "num_key_value_heads": 3, "tie_word_embeddings": True}
    counts = count_config_parameters(smollm2_135m)
    assert counts["total"] == 134_515_008  # SmolLM2-135M's published count
    assert counts["non_embedding"] == 134_515_008 - 49152 * 576  # tied: one embedding matrix


@pytest.mark.parametrize("text, message", [
    ("a: [1, 2\n", ":2: not valid YAML"),
    ("- a\n- b\n", "must be a YAML mapping of `key: value` lines, got list"),
])
def test_yaml_settings_file_errors_name_file_and_line(tmp_path, text, message):
    path = tmp_path / "settings.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=message) as err:
        read_yaml_mapping(path, "settings file")
    assert str(err.value).startswith(str(path))
    with pytest.raises(UserError, match="settings file not found"):
        read_yaml_mapping(tmp_path / "missing.yaml", "settings file")
    (tmp_path / "empty.yaml").write_text("# nothing yet\n")
    assert read_yaml_mapping(tmp_path / "empty.yaml") == {}


def test_atomic_json_and_jsonl_roundtrip(tmp_path):
    # The file primitive writes what it is given; redaction is the writer of a run card's business.
    atomic_write_json(tmp_path / "a" / "card.json", {"x": 1, "token": "not-a-secret-here"})
    assert json.loads((tmp_path / "a" / "card.json").read_text()) == {"x": 1, "token": "not-a-secret-here"}
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["card.json"]  # no temp file left
    atomic_write_jsonl(tmp_path / "a" / "rows.jsonl", iter([{"t": "é"}, {"t": 2}]))
    assert (tmp_path / "a" / "rows.jsonl").read_text(encoding="utf-8") == '{"t": "é"}\n{"t": 2}\n'
    f = tmp_path / "r.jsonl"
    append_jsonl(f, {"i": 1})
    append_jsonl(f, {"i": 2})
    with open(f, "a") as fh:
        fh.write('{"i": 3')  # a writer killed mid-record
    assert [r["i"] for r in read_jsonl(f)] == [1, 2]


def test_corrupt_middle_line_is_a_user_error(tmp_path):
    f = tmp_path / "r.jsonl"
    f.write_text('{"i": 1}\nnot json\n{"i": 2}\n')
    with pytest.raises(UserError, match=r"r.jsonl:2"):
        list(read_jsonl(f))


def test_mtbench_data_from_package():
    qs = load_questions()
    assert len(qs) == 80 and qs[0]["question_id"] == 81 and qs[-1]["question_id"] == 160
    assert {q["category"] for q in qs} == {"writing", "roleplay", "reasoning", "math", "coding",
                                           "extraction", "stem", "humanities"}
    prompts = load_judge_prompts()
    assert {"single-v1", "single-math-v1", "single-v1-multi-turn", "single-math-v1-multi-turn"} <= set(prompts)
    assert len(load_reference_answers()) == 30
    assert len(load_reference_answers(reference="gpt-4-0125-preview")) == 30
    assert temperature_for("math") == 0.0 and temperature_for("writing") == 0.7


def test_unknown_reference_set_is_clear():
    with pytest.raises(UserError, match="gpt-5"):
        load_reference_answers(reference="gpt-5")


def test_cli_without_command_is_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2


def test_atomic_directory_replaces_whole_or_not_at_all(tmp_path):
    out = tmp_path / "ckpt"
    with atomic_directory(out) as tmp:
        (tmp / "a.txt").write_text("1")
        assert not out.exists()  # nothing visible until the block is done
    assert [p.name for p in out.iterdir()] == ["a.txt"]
    with pytest.raises(RuntimeError):
        with atomic_directory(out) as tmp:
            (tmp / "b.txt").write_text("2")
            raise RuntimeError("killed mid-write")
    assert [p.name for p in out.iterdir()] == ["a.txt"]  # the old one is intact
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]  # no temporary left behind
    with atomic_directory(out) as tmp:
        (tmp / "c.txt").write_text("3")
    assert [p.name for p in out.iterdir()] == ["c.txt"]


def test_append_drops_a_torn_last_line_exactly_once(tmp_path, capsys):
    path = tmp_path / "judgments.jsonl"
    path.write_text('{"n": 1}\n{"n": 2, "judgment": "cut off mid-wri')  # a writer killed mid-record
    append_jsonl(path, {"n": 3})
    assert "dropped a torn last line" in capsys.readouterr().err
    assert [json.loads(line) for line in path.read_text().splitlines()] == [{"n": 1}, {"n": 3}]
    append_jsonl(path, {"n": 4})
    assert capsys.readouterr().err == ""  # said once: nothing torn any more
    assert [r["n"] for r in read_jsonl(path)] == [1, 3, 4]


def test_append_keeps_a_complete_last_record_without_newline(tmp_path, capsys):
    path = tmp_path / "answers.jsonl"
    path.write_text('{"n": 1}\n{"n": 2}')  # written by another tool without the final newline: not torn
    append_jsonl(path, {"n": 3})
    assert capsys.readouterr().err == ""
    assert [r["n"] for r in read_jsonl(path)] == [1, 2, 3]


def test_jsonl_keeps_line_separators_inside_strings(tmp_path):
    path = tmp_path / "a.jsonl"
    append_jsonl(path, {"text": "one\u2028two\x85three"})
    assert list(read_jsonl(path)) == [{"text": "one\u2028two\x85three"}]


@pytest.mark.parametrize("data, message", [
    ('{"n": 1}\n'.encode("utf-16"), "UTF-16"),
    (b'{"n": 1}\n\x89PNG\r\n\x1a\n\x00\xff', "0x89 at offset 9 is not valid UTF-8"),
])
def test_non_utf8_file_is_one_line_naming_it(tmp_path, data, message):
    path = tmp_path / "answers.jsonl"
    path.write_bytes(data)
    with pytest.raises(UserError, match=message) as err:
        list(read_jsonl(path))
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_utf8_bom_and_non_object_lines(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"n": 1}\n')  # what some Windows editors save
    assert list(read_jsonl(path)) == [{"n": 1}]
    path.write_text('{"n": 1}\n[1, 2]\n')
    with pytest.raises(UserError, match=r"bom.jsonl:2: expected a JSON object"):
        list(read_jsonl(path))


@pytest.mark.parametrize("name, stem", [("smollm2-dpo", "smollm2-dpo"), ("Qwen/Qwen2.5-72B", "Qwen--Qwen2.5-72B"),
                                        ("gpt-4", "gpt-4"), ("a b.c_d", "a b.c_d")])
def test_model_names_become_one_file_name(name, stem):
    assert name_as_file_stem(name, "--model-id") == stem


@pytest.mark.parametrize("name", ["../../x", "..", "/etc/passwd", "org//model", "org/", "a/../../b", ".hidden",
                                  "a\\..\\b", "tab\there", ""])
def test_names_that_could_escape_the_folder_are_refused(name):
    with pytest.raises(UserError, match="--model-id"):
        name_as_file_stem(name, "--model-id")


def test_output_paths_that_cannot_be_written_are_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "dir").mkdir()
    with pytest.raises(UserError, match="is a directory"):
        check_output_file(tmp_path / "dir", "--output-file")
    with pytest.raises(UserError, match="is a file, not a directory"):
        check_output_file(tmp_path / "file" / "sub" / "out.jsonl", "--output-file")
    with pytest.raises(UserError, match="is a file, expected a directory"):
        check_output_dir(tmp_path / "file", "--out-dir")
    assert check_output_file(tmp_path / "new" / "out.jsonl", "--output-file") == tmp_path / "new" / "out.jsonl"
    assert check_output_dir(tmp_path / "dir", "--out-dir") == tmp_path / "dir"


def test_atomic_outputs_get_ordinary_modes(tmp_path):
    """Tables, reports and checkpoint folders are as readable as open()/mkdir() would make them."""
    import stat

    from align.plumbing import files

    mask = files._UMASK
    files.atomic_write_text(tmp_path / "table.md", "x\n")
    with files.atomic_directory(tmp_path / "ckpt") as tmp:
        (tmp / "config.json").write_text("{}")
    assert stat.S_IMODE((tmp_path / "table.md").stat().st_mode) == 0o666 & ~mask
    assert stat.S_IMODE((tmp_path / "ckpt").stat().st_mode) == 0o777 & ~mask
    assert 0o666 & ~mask != 0o600  # the test means something only under a umask that shares files


def test_run_cards_and_the_series_manifest_are_written_redacted(tmp_path):
    """Secrets are redacted where records that may carry them are written, not by the file primitive."""
    from align.plumbing.runcard import write_run_card
    from align.series.manifest import Manifest

    card = write_run_card(tmp_path, {"hub_token": "hf_abc", "base_url": "http://u:pw@h/v1?api-key=k", "lr": 1})
    text = card.read_text()
    assert "hf_abc" not in text and "pw@" not in text and "=k" not in text
    assert json.loads(text)["lr"] == 1 and json.loads(text)["hub_token"] == "<redacted>"
    manifest = Manifest.load(tmp_path / "series")
    manifest.update("m", "answer", command=["align", "--base-url", "http://u:pw@h/v1"], hf_token="hf_xyz")
    saved = (tmp_path / "series" / "manifest.json").read_text()
    assert "hf_xyz" not in saved and "pw@" not in saved


def test_json_lines_reader_keeps_torn_tail_only_for_files_it_appends_to(tmp_path):
    from align.plumbing.files import numbered_json_lines

    data = tmp_path / "rows.jsonl"
    data.write_text('{"a": 1}\n\n[1, 2]\n{"torn": ', encoding="utf-8")
    assert list(numbered_json_lines(data)) == [(1, {"a": 1}), (3, [1, 2])]  # a killed writer's last line skipped
    with pytest.raises(UserError, match=r"rows.jsonl:4: not valid JSON"):
        list(numbered_json_lines(data, torn_tail=False))  # data someone wrote: the bad line is named
    with pytest.raises(UserError, match=r"rows.jsonl:3: expected a JSON object per line, got list"):
        list(read_jsonl(data))


@pytest.mark.parametrize("ref, hub, bare_hub", [
    ("org/name", True, True), ("HuggingFaceH4/ultrachat_200k", True, True), ("gpt2", False, True),
    ("./org/name", False, False), ("/abs/model", False, False), ("~/model", False, False),
    ("a/b/c", False, False), ("", False, False), (".hidden", False, False)])
def test_one_rule_tells_a_hub_id_from_a_path(tmp_path, monkeypatch, ref, hub, bare_hub):
    from align.plumbing.files import is_hub_id

    monkeypatch.chdir(tmp_path)
    assert (is_hub_id(ref), is_hub_id(ref, bare_name=True)) == (hub, bare_hub)
    if ref and hub:
        (tmp_path / ref).mkdir(parents=True)  # a local folder of that name is a path, not the hub's
        assert not is_hub_id(ref) and not is_hub_id(ref, bare_name=True)


def test_option_args_hands_a_config_section_on_as_options():
    from align.plumbing.argtypes import option_args

    section = {"limit": 5, "device": None, "batch_size": "auto", "other": 1}
    assert option_args(section, {"limit": "--limit", "device": "--device", "batch_size": "--batch-size"}) == [
        "--limit", "5", "--batch-size", "auto"]
