"""Shared fixtures: tiny random Llama checkpoints and small chat/preference files.

The tokenizer and chat template come from the packaged SmolLM2-135M-Instruct (no model hub);
exported once per machine to the align cache (~10 s) and reused.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest
from slurm_cluster import slurm_cluster  # noqa: F401  (the Slurm tests' two-node cluster)

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

REPO = Path(__file__).resolve().parent.parent


@pytest.hookimpl(trylast=True)  # after pytest-xdist's own hook, which names each grouped test
def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (make test: -n 2): each xdist_group runs on one worker, and the longest work starts
    first: each group (a chain one worker runs in order: the README commands, the Slurm tests, the two-process
    launches), then every test marked slow, then the rest, which fill in on both workers at the end. Order within
    each part is kept; a run without -n keeps the collected order."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return

    def part(item) -> int:
        return 0 if item.get_closest_marker("xdist_group") else 1 if item.get_closest_marker("slow") else 2

    items.sort(key=part)  # stable
    if config.getvalue("loadgroup"):
        for item in items:
            _name_group(item)


def _name_group(item) -> None:
    """pytest-xdist 3.8 tells the scheduler a test's group by renaming it `nodeid@group` through `item._nodeid`,
    which pytest 9.2 no longer reads (pytest-xdist issue 1386), so every group would be spread over the workers:
    the same suffix on the id pytest 9.2 reads. Nothing to do where xdist's rename took effect."""
    groups = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                     for m in item.iter_markers("xdist_group")})
    if groups and "@" not in item.nodeid.rpartition("]")[2]:
        from _pytest.nodeid import NodeId

        item._id = NodeId.parse(f"{item.nodeid}@{'_'.join(groups)}")


@pytest.fixture(scope="session")
def smollm2_tokenizer_dir() -> Path:
    """SmolLM2's tokenizer (ChatML template, pad = eos = <|im_end|>) as an ordinary directory."""
    import fcntl

    from align.plumbing.packaged import default_cache_dir, export_smollm2

    # One exporter at a time: pytest-xdist's workers (and a second test run) would otherwise each export into
    # the same cache folder, the later replacing it while the earlier's tests read it.
    default_cache_dir().mkdir(parents=True, exist_ok=True)
    with open(default_cache_dir() / ".smollm2-export.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return export_smollm2(tokenizer_only=True)


@pytest.fixture(scope="session", autouse=True)
def _tokenizer_exported_before_parallel_tests(request):
    """Under pytest-xdist, the tokenizer export happens before any test of each worker, under the fixture's
    lock: a test's own subprocess (`align tokenize --tokenizer packaged:...`, the staged demo) would otherwise
    export it on a fresh machine while the other worker's fixture does."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        request.getfixturevalue("smollm2_tokenizer_dir")


def make_tiny_llama(out_dir: Path, tokenizer_dir: Path, *, hidden: int = 32, layers: int = 2, heads: int = 4,
                    kv_heads: int = 2, ffn: int = 64, seed: int = 0, chat_template: bool = True) -> Path:
    """A random LlamaForCausalLM of a few hundred k parameters with a real tokenizer."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    if not chat_template:  # look like a base checkpoint (GPT-2 style): no template, no pad
        tok.chat_template = None
        tok.pad_token = None
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=ffn,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                         max_position_embeddings=1024, tie_word_embeddings=True,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id)
    model = LlamaForCausalLM(config)
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    return out_dir


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory, smollm2_tokenizer_dir) -> Path:
    """Tiny random chat model (SmolLM2 tokenizer and ChatML template). Read-only: copy to modify."""
    return make_tiny_llama(tmp_path_factory.mktemp("tiny-llama"), smollm2_tokenizer_dir)


@pytest.fixture(scope="session")
def tiny_base_llama_dir(tmp_path_factory, smollm2_tokenizer_dir) -> Path:
    """Tiny random *base* model: its tokenizer has no chat template and no pad token."""
    return make_tiny_llama(tmp_path_factory.mktemp("tiny-base-llama"), smollm2_tokenizer_dir, chat_template=False)


@pytest.fixture(scope="session")
def chatty_llama_dir(tiny_llama_dir, tmp_path_factory) -> Path:
    """The tiny model with larger random weights: with make_tiny_llama's small init a tied-embedding model just
    repeats its last prompt token ("\n", stripped to nothing), which would make text comparisons vacuous."""
    import shutil

    import torch
    from transformers import AutoModelForCausalLM

    out = tmp_path_factory.mktemp("chatty-llama")
    shutil.copytree(tiny_llama_dir, out, dirs_exist_ok=True)
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    torch.manual_seed(0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.ndim == 2 and "embed" not in name:
                param.normal_(0.0, 0.3)
    model.save_pretrained(out)
    return out


TOPICS = ["the ocean", "prime numbers", "bread", "trains", "the moon", "chess", "rain", "python lists"]


def chat_rows(n: int = 24) -> list[dict]:
    """UltraChat-shaped rows: prompt, prompt_id, messages (extra columns are ignored by loaders)."""
    rows = []
    for i in range(n):
        topic = TOPICS[i % len(TOPICS)]
        msgs = [{"role": "user", "content": f"Tell me one fact about {topic}."},
                {"role": "assistant", "content": f"Here is a fact about {topic}: it is interesting ({i})."}]
        if i % 3 == 0:
            msgs += [{"role": "user", "content": "And another?"},
                     {"role": "assistant", "content": f"Another fact: {topic} appears in many stories."}]
        rows.append({"prompt": msgs[0]["content"], "prompt_id": f"p{i}", "messages": msgs})
    return rows


def preference_rows(n: int = 16) -> list[dict]:
    """UltraFeedback-binarized-shaped rows: chosen/rejected full conversations sharing the prompt."""
    rows = []
    for i in range(n):
        topic = TOPICS[i % len(TOPICS)]
        prompt = [{"role": "user", "content": f"Explain {topic} briefly."}]
        rows.append({
            "prompt": prompt[0]["content"], "prompt_id": f"q{i}",
            "chosen": prompt + [{"role": "assistant", "content": f"{topic.capitalize()} is worth learning about."}],
            "rejected": prompt + [{"role": "assistant", "content": "No."}],
            "messages": prompt + [{"role": "assistant", "content": f"{topic.capitalize()} is worth learning about."}],
            "score_chosen": 8.0, "score_rejected": 2.0,
        })
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def chat_jsonl(tmp_path) -> Path:
    return write_jsonl(tmp_path / "chat.jsonl", chat_rows())


@pytest.fixture
def pref_jsonl(tmp_path) -> Path:
    return write_jsonl(tmp_path / "prefs.jsonl", preference_rows())


def run_cli(*args: str, cwd: Path = REPO, timeout: int = 600, env: dict | None = None):
    """Run `python -m ...` or the align CLI in a subprocess; returns CompletedProcess (text)."""
    import subprocess

    full_env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=full_env)


def align_status(argv: list[str]) -> int | None:
    """`align ARGV` in this process: its exit status (what main returns, or the SystemExit's code: a user error
    exits 2 that way)."""
    from align.cli import main

    try:
        return main(list(argv))
    except SystemExit as exited:
        return exited.code


def align_in_process(argv: list[str], capsys) -> tuple[int | None, str, str]:
    """`align ARGV` in this process: (exit status, stdout, stderr)."""
    code = align_status(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line_exit_2(argv: list[str], capsys) -> str:
    """Run `align ARGV` in-process, expecting a user error: exit 2 and one `error:` line, no traceback."""
    from align.cli import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err  # one line, no traceback
    return err


# ---------------------------------------------------------------- the judge client's retry waits (tests/judges)

class RecordingTime:
    """Stands in for the `time` module inside openai's client: records retry waits instead of sleeping."""

    def __init__(self):
        self.sleeps: list[float] = []

    def __getattr__(self, name):
        return getattr(time, name)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


@pytest.fixture
def waits(monkeypatch) -> RecordingTime:
    import openai._base_client

    recorder = RecordingTime()
    monkeypatch.setattr(openai._base_client, "time", recorder)
    return recorder


# ---------------------------------------------------------------- a stand-in series (tests/series)

@pytest.fixture
def study(tmp_path):
    """A small series: scratch (given checkpoint), expanded (grown from it), random init; stand-in stages."""
    ckpt = tmp_path / "ckpt-small"
    ckpt.mkdir()
    (ckpt / "config.json").write_text(json.dumps({
        "model_type": "llama", "vocab_size": 1000, "hidden_size": 64, "intermediate_size": 128,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "tie_word_embeddings": True}))
    (tmp_path / "sft.yaml").write_text("learning_rate: 3.0e-5\nmax_steps: 10\nper_device_train_batch_size: 2\n"
                                       "max_length: 128\nbf16: false\n")
    (tmp_path / "dpo.yaml").write_text("learning_rate: 5.0e-7\nmax_steps: 5\nper_device_train_batch_size: 2\n"
                                       "max_length: 128\nbf16: false\n"
                                       f"dataset_name: {write_jsonl(tmp_path / 'prefs.jsonl', preference_rows(2))}\n")
    (tmp_path / "grow.yaml").write_text("hidden_size: 96\nintermediate_size: 192\nnum_hidden_layers: 3\n")
    series = {
        "name": "test-series",
        "output_dir": str(tmp_path / "out"),
        "train": {"launcher": "python"},
        "prepare": [{"name": "data", "command": ["python", "-m", "nothing", "--out", "{output_dir}/data/chat.jsonl"],
                     "outputs": ["{output_dir}/data/chat.jsonl"]},
                    {"name": "notes", "command": ["python", "-m", "nothing", "--out", "{output_dir}/notes/n.txt"],
                     "outputs": ["{output_dir}/notes/n.txt"]}],
        "sft": {"recipe": str(tmp_path / "sft.yaml"),
                "overrides": {"report_to": "none", "dataset_name": "{output_dir}/data/chat.jsonl"}},
        "dpo": {"recipe": str(tmp_path / "dpo.yaml")},
        "answer": {"question_begin": 0, "question_end": 3, "max_new_token": 8},
        "judge": {"model": "stand-in-judge", "base_url": "http://127.0.0.1:9/v1", "max_tokens": 16},
        "models": [
            {"name": "small-scratch", "size": "S", "construction": "scratch", "path": str(ckpt)},
            {"name": "big-expanded", "size": "B", "construction": "expanded",
             "grow": {"from": "small-scratch", "spec": str(tmp_path / "grow.yaml"), "method": "aki"}},
            {"name": "small-init", "size": "S", "construction": "init", "init": {"like": "small-scratch"}},
        ],
    }
    return tmp_path, series


# ---------------------------------------------------------------- one browser, one lm-eval task index per session

CHROMIUM = Path("/usr/bin/chromium")  # Debian's (make setup: apt-get install -y chromium)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


@pytest.fixture(scope="session")
def chromium():
    """One headless Chromium, driven by Playwright, for every report.html test (a launch takes ~2 s); each test
    opens its pages in a context of its own (new_page), so no state passes between tests."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make setup` installs it (apt-get install -y chromium); "
                    "this test needs a real browser")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def new_page(chromium):
    """new_page(**context_options) -> a page in a fresh browser context of the session's Chromium, closed after
    the test."""
    contexts = []

    def make(**options):
        contexts.append(chromium.new_context(**options))
        return contexts[-1].new_page()

    yield make
    for context in contexts:
        context.close()


@pytest.fixture(scope="session")
def lm_eval_task_index():
    """lm-eval walks its ~15,000 built-in task YAML files (~10 s) each time `align eval` builds a TaskManager:
    with this fixture the built-in part is walked once per session and reused; --include-path folders are still
    walked every time and win over built-in tasks, as in TaskIndex.build (which merges its roots in order)."""
    import lm_eval.tasks
    from lm_eval.tasks._index import TaskIndex

    builtin = Path(lm_eval.tasks.__file__).parent
    walk = TaskIndex.build
    cached: dict = {}

    def build(paths, *, resolve_includes=True):
        paths = [Path(p) for p in paths]
        if not paths or paths[0] != builtin or not resolve_includes:
            return walk(paths, resolve_includes=resolve_includes)
        if "builtin" not in cached:
            cached["builtin"] = walk([builtin])
        index = dict(cached["builtin"])  # lm-eval deep-copies an entry's config before building a task from it
        index.update(walk(paths[1:]))
        return index

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(TaskIndex, "build", staticmethod(build))
        yield


@pytest.fixture(scope="session")
def tiny_family(tmp_path_factory, smollm2_tokenizer_dir):
    """family -> a tiny random checkpoint of that family (fakes.tiny_models.FAMILIES: Llama, Gemma, Gemma 2,
    Qwen2), each built once per session and only when a test asks for it; tests read it, never write into it."""
    from fakes.tiny_models import make_tiny

    built: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in built:
            built[family] = make_tiny(family, tmp_path_factory.mktemp(f"tiny-{family}"), smollm2_tokenizer_dir)
        return built[family]
    return get


@pytest.fixture
def one_torch_thread():
    """Tiny matrices: a second thread only spin-waits on this shared machine (measured 4x slower under load)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
