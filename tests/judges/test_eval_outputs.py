"""`align eval` / `align heldout` (issue 29 items 2, 3, 10, 11): outputs follow the training outputs' rules,
a task folder's Python runs only when allowed, and bad input is one line, exit 2, before anything loads.

Most checks here run before lm-eval builds its task index (~15 s), so these tests are fast; the one real
evaluation (helpers allowed, recorded in the run card, an earlier result replaced only with --overwrite) is `slow`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import test_measures_eval
import test_measures_heldout
from conftest import chat_rows, one_line_exit_2, write_jsonl
from test_measures_eval import write_local_tasks

from align.cli import main
from align.plumbing.locks import output_lock

local_tasks = test_measures_eval.local_tasks  # the local task folder (a module fixture, reused)
chat_models = test_measures_heldout.chat_models  # chat models saved with SFT's template (reused)

# `align eval` runs here reuse one walk of lm-eval's built-in tasks (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("lm_eval_task_index")
HELPER_YAML = """task: tiny_helper
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
process_docs: !function helper.docs
output_type: multiple_choice
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{label}}}}"
metric_list:
  - metric: acc
"""
# Importing the helper leaves a mark: the tests can tell whether lm-eval (or anything) ran it.
HELPER_PY = """from pathlib import Path

Path(__file__).with_name("IMPORTED").write_text("helper.py ran")


def docs(dataset):
    return dataset
"""


@pytest.fixture
def helper_tasks(tmp_path) -> Path:
    (tmp_path / "tasks").mkdir()
    folder = write_local_tasks(tmp_path / "tasks")
    (folder / "helper.yaml").write_text(HELPER_YAML.format(data=folder / "mc.jsonl"))
    (folder / "helper.py").write_text(HELPER_PY)
    return folder


def _eval(model: Path, out: Path, *more: str) -> list[str]:
    return ["eval", "--model-path", str(model), "--out", str(out), "--tasks", "tiny_mc", *more]


def _earlier_result(out: Path, stage: str = "eval", model: str = "other-model") -> dict[str, bytes]:
    """What an earlier run of the command left in `out` (its files, run card last)."""
    out.mkdir(parents=True)
    if stage == "eval":
        (out / "lm_eval" / "m").mkdir(parents=True)
        (out / "lm_eval" / "m" / "results_1.json").write_text("{}")
        result = "base_eval.json"
        card = {"stage": "eval", "model_path": model, "tasks": {"arc_easy": "allenai/ai2_arc"}}
    else:
        result = "heldout.json"
        card = {"stage": "heldout", "model_path": model, "kind": "sft"}
    (out / result).write_text('{"measures": {}}')
    (out / f"{stage}.run_card.json").write_text(json.dumps({**card, "output_file": str(out / result)}))
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def _files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------- item 2: outputs

def test_eval_refuses_an_out_folder_that_is_not_its_own(tmp_path, tiny_base_llama_dir, local_tasks, capsys):
    out = tmp_path / "clone"  # `--out .` in a clone of lm-evaluation-harness: its package is `lm_eval/`
    (out / "lm_eval").mkdir(parents=True)
    (out / "lm_eval" / "__init__.py").write_text("# not ours\n")
    err = one_line_exit_2(_eval(tiny_base_llama_dir, out, "--include-path", str(local_tasks), "--overwrite"), capsys)
    assert "holds lm_eval but no eval.run_card.json: not a finished align eval output" in err, err
    (out / "setup.py").write_text("")
    err = one_line_exit_2(_eval(tiny_base_llama_dir, out, "--include-path", str(local_tasks)), capsys)
    assert f"--out {out} is not empty and not an earlier align eval output (it holds setup.py)" in err, err
    assert _files(out) == {"lm_eval/__init__.py": b"# not ours\n", "setup.py": b""}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clone"]  # no lock, no staging left


def test_second_eval_into_an_earlier_result_needs_overwrite(tmp_path, tiny_base_llama_dir, local_tasks, capsys):
    out = tmp_path / "eval"
    before = _earlier_result(out)
    err = one_line_exit_2(_eval(tiny_base_llama_dir, out, "--include-path", str(local_tasks)), capsys)
    assert "already holds a align eval result (model other-model, tasks arc_easy)" in err, err
    assert "pass --overwrite to replace that result" in err
    assert _files(out) == before


def test_heldout_over_another_models_result_needs_overwrite(tmp_path, tiny_llama_dir, capsys):
    out = tmp_path / "heldout"
    before = _earlier_result(out, "heldout")
    data = write_jsonl(tmp_path / "chat.jsonl", chat_rows(4))
    err = one_line_exit_2(["heldout", "--kind", "sft", "--model-path", str(tiny_llama_dir), "--data", str(data),
                           "--rows", "4", "--out", str(out)], capsys)
    assert "already holds a align heldout result (model other-model, kind sft)" in err, err
    assert _files(out) == before


def test_heldout_replaces_its_own_result_with_overwrite_and_keeps_it_on_failure(tmp_path, chat_models, capsys):
    out = tmp_path / "heldout"
    _earlier_result(out, "heldout")
    data = write_jsonl(tmp_path / "chat.jsonl", chat_rows(4))
    argv = ["heldout", "--kind", "sft", "--model-path", str(chat_models[0]), "--data", str(data), "--rows", "4",
            "--out", str(out), "--overwrite"]
    assert main(argv) == 0
    card = json.loads((out / "heldout.run_card.json").read_text())
    assert card["model_path"] == str(chat_models[0]) and sorted(p.name for p in out.iterdir()) == \
        ["heldout.json", "heldout.run_card.json"]
    before = _files(out)
    capsys.readouterr()
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"messages": "not a list"}])
    one_line_exit_2([*argv[:6], str(bad), *argv[7:]], capsys)
    assert _files(out) == before  # the failed run replaced nothing


def test_one_writer_per_eval_and_heldout_folder(tmp_path, tiny_base_llama_dir, tiny_llama_dir, local_tasks, capsys):
    out = tmp_path / "eval"
    data = write_jsonl(tmp_path / "chat.jsonl", chat_rows(4))
    with output_lock(out, "--out"):  # another align process evaluating into it now
        err = one_line_exit_2(_eval(tiny_base_llama_dir, out, "--include-path", str(local_tasks)), capsys)
        assert f"--out {out} is in use by another align process" in err, err
        err = one_line_exit_2(["heldout", "--kind", "sft", "--model-path", str(tiny_llama_dir), "--data", str(data),
                               "--rows", "4", "--out", str(out)], capsys)
        assert "is in use by another align process" in err, err


def test_symlinked_lm_eval_folder_refused_before_evaluating(tmp_path, tiny_base_llama_dir, local_tasks, capsys):
    out = tmp_path / "eval"
    _earlier_result(out)
    elsewhere = tmp_path / "precious"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("keep")
    shutil.rmtree(out / "lm_eval")
    (out / "lm_eval").symlink_to(elsewhere)
    err = one_line_exit_2(_eval(tiny_base_llama_dir, out, "--include-path", str(local_tasks), "--overwrite"), capsys)
    assert "lm_eval is a symbolic link, not what align eval writes there" in err, err
    assert (out / "lm_eval").is_symlink() and (elsewhere / "keep.txt").read_text() == "keep"


def test_eval_out_inside_its_task_folder_is_refused(tmp_path, tiny_base_llama_dir, local_tasks, capsys):
    err = one_line_exit_2(_eval(tiny_base_llama_dir, local_tasks / "out", "--include-path", str(local_tasks)), capsys)
    assert "lies inside the input --include-path" in err, err


def test_a_failed_evaluation_leaves_no_folder_and_keeps_an_earlier_result(tmp_path, tiny_base_llama_dir, local_tasks,
                                                                          monkeypatch):
    """lm-eval failing midway (here: a stand-in index and evaluation, no real one needed)."""
    import lm_eval.tasks
    from lm_eval.tasks._index import Entry, Kind

    import judges.measures.base_eval as base_eval

    class Manager:
        def __init__(self, include_path=None):
            cfg = {"task": "tiny_mc", "dataset_path": "json", "output_type": "multiple_choice",
                   "doc_to_choice": "{{choices}}"}
            self.task_index = {"tiny_mc": Entry("tiny_mc", Kind.TASK, None, cfg)}

    def fails(args, manager, names, out_dir):
        (out_dir / "m").mkdir()
        (out_dir / "m" / "results_half.json").write_text("{")
        raise RuntimeError("lm-eval failed midway")

    monkeypatch.setattr(lm_eval.tasks, "TaskManager", Manager)
    monkeypatch.setattr(base_eval, "_lm_eval", fails)
    out = tmp_path / "new" / "eval"
    with pytest.raises(RuntimeError, match="midway"):
        main(_eval(tiny_base_llama_dir, out, "--include-path", str(local_tasks)))
    assert not (tmp_path / "new").exists()  # no empty --out (nor its parent) left behind
    earlier = tmp_path / "earlier"
    before = _earlier_result(earlier)
    with pytest.raises(RuntimeError, match="midway"):
        main(_eval(tiny_base_llama_dir, earlier, "--include-path", str(local_tasks), "--overwrite"))
    assert _files(earlier) == before and sorted(p.name for p in earlier.iterdir()) == \
        ["base_eval.json", "eval.run_card.json", "lm_eval"]


# ---------------------------------------------------------------- item 3: Python from a task folder

def test_function_helpers_refused_without_allow_code(tmp_path, tiny_base_llama_dir, helper_tasks, capsys):
    argv = ["eval", "--model-path", str(tiny_base_llama_dir), "--out", str(tmp_path / "out"), "--tasks",
            "tiny_helper", "--include-path", str(helper_tasks)]
    err = one_line_exit_2(argv, capsys)
    assert f"{helper_tasks / 'helper.yaml'}:7: !function helper.docs: this task imports " \
           f"{(helper_tasks / 'helper.py').resolve()} and runs it" in err, err
    assert "pass --allow-code" in err
    assert not (helper_tasks / "IMPORTED").exists() and not (tmp_path / "out").exists()


def test_helpers_of_tasks_not_run_need_no_permission(helper_tasks):
    from judges.measures.task_code import check_code, scan_folders, selected

    tasks = scan_folders([helper_tasks])
    assert [t.path.name for t in selected(tasks, ["tiny_mc"])] == ["mc.yaml"]
    check_code(selected(tasks, ["tiny_mc"]), allow_code=False)  # the helper task is not selected
    assert [t.path.name for t in selected(tasks, ["tiny_helper"])] == ["helper.yaml"]


def test_functions_found_through_includes_groups_and_tags(tmp_path):
    from align.plumbing.errors import UserError
    from judges.measures.task_code import check_code, provenance, scan_folders, selected

    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "_base").write_text("process_results: !function lib.score\n")  # no .yaml: only included
    (tmp_path / "sub" / "lib.py").write_text("def score(doc, results):\n    return {}\n")
    (tmp_path / "t.yaml").write_text("task: t\ntag: [fam]\ninclude: sub/_base\n")
    (tmp_path / "g.yaml").write_text("group: g\ntask: [t]\n")
    tasks = scan_folders([tmp_path])
    for name in ("t", "g", "fam"):
        with pytest.raises(UserError, match=r"sub/_base:1: !function lib.score: this task imports .*sub/lib.py"):
            check_code(selected(tasks, [name]), allow_code=False)
    record = provenance(selected(tasks, ["g"]))
    assert [Path(f["path"]).name for f in record["task_files"]] == ["g.yaml", "_base", "t.yaml"]  # by path
    assert record["python_helpers"] == [{"path": str((tmp_path / "sub" / "lib.py").resolve()),
                                         "sha256": __import__("hashlib").sha256(
                                             (tmp_path / "sub" / "lib.py").read_bytes()).hexdigest(),
                                         "functions": ["lib.score"]}]


@pytest.mark.parametrize("extra, message", [
    ('doc_to_decoy: "{{ cycler.__init__.__globals__.os.getpid() }}"\n',
     "doc_to_decoy: a template that reaches Python internals (`__`) runs code"),
    ("metric_list:\n  - metric: someone/their_metric\n",
     "metric 'someone/their_metric' is not one of lm-eval's: it would be loaded with HF evaluate"),
])
def test_templates_and_metrics_that_run_code_refused_without_allow_code(extra, message, tmp_path, tiny_base_llama_dir,
                                                                       local_tasks, capsys):
    folder = tmp_path / "tasks"
    shutil.copytree(local_tasks, folder)
    text = (folder / "mc.yaml").read_text()
    text = text[:text.index("metric_list:")] if "metric_list" in extra else text
    (folder / "mc.yaml").write_text(text + extra)
    err = one_line_exit_2(_eval(tiny_base_llama_dir, tmp_path / "out", "--include-path", str(folder)), capsys)
    assert f"{folder / 'mc.yaml'}: {message}" in err and "pass --allow-code" in err, err


def test_templates_render_in_a_sandbox_while_code_is_not_allowed():
    import lm_eval.utils
    from jinja2.exceptions import SecurityError

    from judges.measures.task_code import sandboxed_templates

    escape = "{{ cycler|attr('_' ~ '_init_' ~ '_') }}"  # no literal `__`: only the sandbox stops it
    plain = lm_eval.utils.env
    with sandboxed_templates():
        assert lm_eval.utils.apply_template("{{ q | regex_replace('a', 'b') }}: {{ c[1] }}",
                                            {"q": "aa", "c": ["x", "y"]}) == "bb: y"  # data templates work
        with pytest.raises(SecurityError):
            lm_eval.utils.apply_template(escape, {})
    assert lm_eval.utils.env is plain
    assert "Cycler.__init__" in lm_eval.utils.apply_template(escape, {})  # what the sandbox stopped


@pytest.mark.slow
def test_allowed_helpers_run_and_are_recorded_and_a_second_eval_needs_overwrite(tmp_path, tiny_base_llama_dir,
                                                                                helper_tasks, capsys):
    out = tmp_path / "eval"
    argv = ["eval", "--model-path", str(tiny_base_llama_dir), "--out", str(out), "--tasks", "tiny_helper",
            "--include-path", str(helper_tasks), "--limit", "2", "--device", "cpu"]
    assert main([*argv, "--allow-code"]) == 0
    assert (helper_tasks / "IMPORTED").exists()  # allowed: lm-eval ran it
    card = json.loads((out / "eval.run_card.json").read_text())
    assert card["allow_code"] is True and card["tasks"] == {"tiny_helper": "json"}
    helper = card["python_helpers"][0]
    assert helper["path"] == str((helper_tasks / "helper.py").resolve()) and helper["functions"] == ["helper.docs"]
    assert [Path(f["path"]).name for f in card["task_files"]] == ["helper.yaml"] and len(helper["sha256"]) == 64
    first = _files(out)
    capsys.readouterr()
    err = one_line_exit_2([*argv[:6], "tiny_mc", *argv[7:]], capsys)  # other tasks into the same --out
    assert "already holds a align eval result" in err and "tasks tiny_helper" in err, err
    assert _files(out) == first
    assert main([*argv[:6], "tiny_mc", *argv[7:], "--overwrite"]) == 0
    assert json.loads((out / "eval.run_card.json").read_text())["tasks"] == {"tiny_mc": "json"}
    assert sorted(p.name for p in out.iterdir()) == ["base_eval.json", "eval.run_card.json", "lm_eval"]


# ---------------------------------------------------------------- item 10: one line, before anything loads

def test_task_yaml_syntax_error_names_file_and_line(tmp_path, tiny_base_llama_dir, local_tasks, capsys):
    folder = tmp_path / "tasks"
    shutil.copytree(local_tasks, folder)
    broken = folder / "broken.yaml"
    broken.write_text("task: broken\ndataset_path: json\ndoc_to_text: [unclosed\noutput_type: multiple_choice\n")
    err = one_line_exit_2(_eval(tiny_base_llama_dir, tmp_path / "out", "--include-path", str(folder)), capsys)
    assert err.startswith(f"error: {broken}:") and "not valid YAML" in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("cfg, problem", [
    ({"output_type": "multiple_choise", "doc_to_choice": "x"}, "output_type 'multiple_choise' is not one of"),
    ({"output_type": "multiple_choice"}, "output_type multiple_choice needs doc_to_choice"),
])
def test_bad_task_config_refused_by_the_checks_before_the_model(cfg, problem, local_tasks):
    from lm_eval.tasks._index import Entry, Kind

    from align.plumbing.errors import UserError
    from judges.measures.tasks import check_tasks

    config = {"task": "t", "dataset_path": "json", **cfg}
    index = {"t": Entry("t", Kind.TASK, local_tasks / "t.yaml", config)}
    with pytest.raises(UserError, match=f"task t \\({local_tasks / 't.yaml'}\\): {problem}"):
        check_tasks(index, ["t"])
    assert check_tasks({"t": Entry("t", Kind.TASK, None, {**config, "output_type": "loglikelihood"})}, ["t"])


def _no_tokenizer(tmp_path, model: Path) -> Path:
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(model / name, bare / name)
    return bare


def test_heldout_checkpoint_without_tokenizer_is_one_line(tmp_path, tiny_base_llama_dir, capsys):
    bare = _no_tokenizer(tmp_path, tiny_base_llama_dir)
    data = write_jsonl(tmp_path / "chat.jsonl", chat_rows(4))
    err = one_line_exit_2(["heldout", "--kind", "sft", "--model-path", str(bare), "--data", str(data), "--rows", "4",
                           "--out", str(tmp_path / "out")], capsys)
    assert f"--model-path {bare}: cannot load its tokenizer" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bare", "chat.jsonl"]


@pytest.mark.slow  # lm-eval's task index first (~15 s): the task checks come before the tokenizer's
def test_eval_checkpoint_without_tokenizer_is_one_line(tmp_path, tiny_base_llama_dir, local_tasks, capsys):
    bare = _no_tokenizer(tmp_path, tiny_base_llama_dir)
    err = one_line_exit_2(_eval(bare, tmp_path / "out", "--include-path", str(local_tasks)), capsys)
    assert f"--model-path {bare}: cannot load its tokenizer" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bare"]


@pytest.mark.parametrize("flag, value, message", [
    ("--batch-size", "auto:x", "'auto:x': expected a positive integer, 'auto' or 'auto:N'"),
    ("--batch-size", "auto:0", "'auto:0': expected"),
    ("--device", "bogus", "'bogus': not a device torch knows"),
    ("--device", "cuda:99", "'cuda:99': this machine has"),
])
def test_bad_batch_size_and_device_are_one_line(flag, value, message, tmp_path, tiny_base_llama_dir, capsys):
    commands = [_eval(tiny_base_llama_dir, tmp_path / "out", flag, value)]
    if flag == "--device":
        commands.append(["heldout", "--kind", "sft", "--model-path", "m", "--data", "d", "--out", "o", flag, value])
    for argv in commands:
        with pytest.raises(SystemExit) as exc:  # refused while the command line is parsed
            main(argv)
        err = capsys.readouterr().err
        assert exc.value.code == 2 and err.count("\n") == 1 and f"error: argument {flag}: {message}" in err, err
    assert not (tmp_path / "out").exists()


def test_good_batch_sizes_and_devices_pass():
    from judges.measures.base_eval import _batch_size
    from judges.measures.model_checks import device

    assert [_batch_size(t) for t in ("1", "auto", "auto:4")] == ["1", "auto", "auto:4"]
    assert device("cpu") == "cpu" and device("cpu:0") == "cpu:0"
