"""The hf backend's other engines: transformers' own `generate_batch`, and the plain path `auto` falls back
to when the transformers internals the align engine stands on are untested, missing or changed."""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import pytest
from test_answer_families import greedy

from align.plumbing.errors import UserError

BACKENDS = Path(__file__).resolve().parents[2] / "judges" / "answers" / "backends"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("family", ["llama", "gemma"])
def test_generate_batch_equals_batch_one(family, tiny_family, caplog):
    """transformers' continuous batching (paged attention), turn 2 re-encoding the conversation: the
    greedy text of one question at a time through `model.generate`, both turns."""
    model_dir = tiny_family(family)
    single = greedy(model_dir, batch_size=1, cache_reuse=False)
    with caplog.at_level(logging.INFO, logger="judges.answers.backends"):
        batched = greedy(model_dir, engine="generate_batch")
    assert "generate_batch engine, asked for" in caplog.text
    assert sum("generate_batch: " in r.getMessage() for r in caplog.records) >= 2  # it ran, once per turn at least
    assert batched == single
    texts = [t for turns in single.values() for t in turns]
    assert len(texts) == 10 and sum(bool(t.strip()) for t in texts) >= 7  # real text was compared


def _untested_version(monkeypatch):
    from judges.answers.backends import hf_internals

    monkeypatch.setattr(hf_internals, "installed_transformers", lambda: "5.26.0")
    return "transformers 5.26.0 is outside the versions the align engine was tested on"


def _missing_internal(monkeypatch):
    import transformers.integrations.sdpa_attention as sdpa

    monkeypatch.delattr(sdpa, "sdpa_attention_forward")
    return "the align engine cannot run: transformers.integrations.sdpa_attention.sdpa_attention_forward is missing"


def _changed_signature(monkeypatch):
    from transformers.cache_utils import DynamicLayer

    current = DynamicLayer.get_mask_sizes

    def older(self, cache_position):  # the pre-5.x form; answers still right, the engine's BatchLayer is not
        return current(self, cache_position)

    monkeypatch.setattr(DynamicLayer, "get_mask_sizes", older)
    return "DynamicLayer.get_mask_sizes has another signature than (query_length)"


@pytest.mark.parametrize("cause", [_untested_version, _missing_internal, _changed_signature])
def test_auto_falls_back_to_plain_generate(cause, tiny_family, caplog, monkeypatch):
    """Outside the tested transformers versions, or with an internal missing or changed, `auto` answers with
    `model.generate` (padded batches), says why in the one engine line, and the text is batch-1's."""
    import judges.answers.backends.hf_rows as rows

    model_dir = tiny_family("llama")
    single = greedy(model_dir, batch_size=1, cache_reuse=False)
    why = cause(monkeypatch)
    monkeypatch.setattr(rows, "RowBatch", None)  # the align engine must not start
    with caplog.at_level(logging.INFO, logger="judges.answers.backends"):
        fallback = greedy(model_dir, batch_size=8)
    said = [r.getMessage() for r in caplog.records if why in r.getMessage()]
    assert len(said) == 1 and "padded engine" in said[0], caplog.text
    assert fallback == single


def test_asked_for_align_without_its_internals_is_a_clear_error(tiny_family, monkeypatch):
    model_dir = tiny_family("llama")
    why = _missing_internal(monkeypatch)
    with pytest.raises(UserError, match="--hf-engine align: cannot run with this transformers: ") as err:
        greedy(model_dir, engine="align")
    assert why.removeprefix("the align engine cannot run: ") in str(err.value) and "\n" not in str(err.value)


def test_installed_transformers_is_in_the_tested_range():
    """The tests above (and test_answer*.py) run the align engine itself: this transformers is one it was tested on."""
    from judges.answers.backends import hf_internals

    assert hf_internals.version_problem() is None
    assert hf_internals.library_problem() is None


def _imports(path: Path) -> list[tuple[str, str | None]]:
    """(module, name or None) for every import in `path`, at the top or inside a function."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(a.name, None) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found += [(node.module, a.name) for a in node.names]
    return found


def test_backend_imports_run_one_way_and_internals_stay_in_one_module():
    """hf.py -> engines -> hf_common / hf_internals, never back (no circle, lazy imports included); only
    hf_internals.py imports transformers' cache, mask, attention and warper modules or reads private names."""
    from judges.answers.backends.hf_internals import USED

    engines = ["hf_rows", "hf_cb", "hf_attention", "hf_linear", "hf_common", "hf_internals"]
    for name in engines:
        imported = _imports(BACKENDS / f"{name}.py")
        assert not [(m, n) for m, n in imported
                    if m == "judges.answers.backends.hf" or (m, n) == ("judges.answers.backends", "hf")]
    for name in ("hf_common", "hf_internals"):
        assert not [m for m, _ in _imports(BACKENDS / f"{name}.py") if m.startswith("judges")], name
    internal_names = {name for _, name in USED}
    for name in ["hf", "hf_rows", "hf_cb", "hf_attention", "hf_linear", "hf_common"]:
        source = (BACKENDS / f"{name}.py").read_text(encoding="utf-8")
        tree = ast.parse(source)
        private = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr.startswith("_")
                   and not n.attr.startswith("__")}
        assert not private, f"{name}.py reads private names {private}: reach them through hf_internals.py"
        inner = [f"{m}.{n}" for m, n in _imports(BACKENDS / f"{name}.py")
                 if m.startswith("transformers.") or (m == "transformers" and n in internal_names)]
        assert not inner, f"{name}.py imports {inner}: reach them through hf_internals.py"


def test_model_code_without_what_the_engine_hands_it_is_named():
    """A model whose forward takes the cache under another name (transformers 4 called it `past_key_values`)
    or lacks its attention setting: the probe names what is missing."""
    from types import SimpleNamespace

    from judges.answers.backends.hf_internals import model_problem

    def older_forward(input_ids, attention_mask, position_ids, past_key_values, use_cache, logits_to_keep):
        pass

    def forward(input_ids, attention_mask, position_ids, cache, use_cache, logits_to_keep):
        pass

    class Model(SimpleNamespace):
        def set_attn_implementation(self, name):
            pass

    assert model_problem(Model(forward=older_forward, config=SimpleNamespace(_attn_implementation="sdpa"))) == \
        "Model.forward takes no cache"
    assert "no config._attn_implementation" in model_problem(Model(forward=forward, config=SimpleNamespace()))
    assert model_problem(Model(forward=forward, config=SimpleNamespace(_attn_implementation="sdpa"))) is None
