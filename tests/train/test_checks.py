"""Checks before anything loads: one line per problem, exit 2, nothing touched; the same at the start
of a real run; `align series --dry-run` runs them for every recipe of a series."""

from __future__ import annotations

import pytest
from conftest import REPO, align_in_process, write_jsonl

from align.train import checks


@pytest.fixture
def machine(monkeypatch):
    """A machine with a GPU or without, with these packages installed."""
    def set_up(gpu: bool, installed: set[str]):
        monkeypatch.setattr(checks, "_gpu", lambda: gpu)
        monkeypatch.setattr(checks, "_installed", lambda *modules: bool(installed & set(modules)))
    return set_up


@pytest.mark.parametrize("raw, gpu, installed, expected", [
    ({"bf16": True}, False, set(), ["bf16: true needs a GPU"]),
    ({}, False, set(), ["bf16 (TRL's default when unset) needs a GPU"]),
    ({"bf16": "false"}, False, set(), []),
    ({"bf16": True}, True, set(), []),
    ({"bf16": False, "load_in_4bit": True}, False, set(), ["load_in_4bit: true (QLoRA) needs a CUDA GPU"]),
    ({"load_in_4bit": "true"}, True, set(), ["load_in_4bit: true needs bitsandbytes"]),
    ({"bf16": False, "attn_implementation": "flash_attention_2"}, False, set(),
     ["attn_implementation: flash_attention_2 needs the flash_attn package"]),
    ({"attn_implementation": "flash_attention_3"}, True, set(),
     ["attn_implementation: flash_attention_3 needs the flash_attn_interface package"]),
    ({"attn_implementation": "flash_attention_2"}, True, {"flash_attn"}, []),
    ({"attn_implementation": "flash_attention_2"}, False, {"flash_attn"},
     ["bf16 (TRL's default when unset)", "attn_implementation: flash_attention_2 needs a CUDA GPU"]),
    ({"bf16": False, "report_to": ["tensorboard", "wandb"]}, False, {"tensorboardX"},
     ["report_to: wandb is not installed"]),
    ({"bf16": False, "report_to": "wandb,mlflow"}, False, {"wandb", "mlflow"}, []),
    ({"bf16": False, "report_to": ["tensorbored"]}, False, set(), ["report_to: unknown tracker 'tensorbored'"]),
    ({"bf16": False, "report_to": "none"}, False, set(), []),
    ({"bf16": False, "push_to_hub": True}, False, set(), ["push_to_hub: true needs hub access, and HF_HUB_OFFLINE=1"]),
    ({"bf16": False, "use_liger_kernel": True, "optim": "paged_adamw_32bit"}, False, set(),
     ["use_liger_kernel: true needs liger-kernel", "optim: paged_adamw_32bit needs bitsandbytes"]),
    ({"bf16": False, "padding_free": True, "attn_implementation": "sdpa"}, False, set(),
     ["padding_free: true needs attn_implementation flash_attention_2/3"]),
])
def test_environment_problems(machine, raw, gpu, installed, expected):
    machine(gpu, installed)
    problems = checks.environment_problems(raw)
    assert len(problems) == len(expected), problems
    for problem, start in zip(problems, expected, strict=True):
        assert problem.startswith(start), (problem, start)


def test_push_to_hub_online_needs_a_token(machine, monkeypatch):
    import huggingface_hub

    machine(True, set())
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "0")
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    assert checks.environment_problems({"push_to_hub": True}) == [
        "push_to_hub: true needs a hub token (huggingface-cli login, or HF_TOKEN): none is set"]
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: "hf_x")
    assert checks.environment_problems({"push_to_hub": True}) == []


def sft(argv, capsys):
    code, out, err = align_in_process(["sft", *argv], capsys)
    assert "Traceback" not in err
    return code, out, "\n".join(line for line in err.splitlines() if line.startswith("error:"))


def test_dry_run_reports_every_problem_on_its_own_line(tmp_path, capsys, machine):
    machine(False, set())
    recipe = tmp_path / "r.yaml"
    recipe.write_text("dataset_name: some/hub-dataset\nmodel_name_or_path: ./no-such-model\nbf16: true\n"
                      "report_to: [wandb]\nlearning_rate: 1.0e-5\n")
    code, out, err = sft(["--config", str(recipe), "--output_dir", str(tmp_path / "o"), "--dry_run", "true"], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 4, lines
    assert lines[0].startswith("error: bf16: true needs a GPU")
    assert lines[1].startswith("error: report_to: wandb is not installed")
    assert lines[2] == "error: model_name_or_path ./no-such-model: not found"
    assert lines[3].startswith("error: dataset some/hub-dataset[train]: a hub dataset that needs hub access")
    assert lines[3].endswith("(4 problems; nothing was loaded)")
    assert not (tmp_path / "o").exists()


def test_dry_run_reads_and_checks_the_data(tiny_llama_dir, tmp_path, capsys, machine):
    machine(False, set())
    data = write_jsonl(tmp_path / "chat.jsonl", [{"messages": [{"role": "user", "content": "hi"}]}])
    argv = ["--config", str(REPO / "recipes/sft/cpu-demo.yaml"), "--model_name_or_path", str(tiny_llama_dir),
            "--dataset_name", str(data), "--invalid_rows", "error", "--output_dir", str(tmp_path / "o"),
            "--dry_run", "true"]
    code, out, err = sft(argv, capsys)
    assert code == 2 and err.strip() == f"error: {data}:1: the last message must be the assistant's"
    write_jsonl(data, [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}])
    code, out, err = sft(argv, capsys)
    assert code == 0 and "sft recipe ok: 1 train rows from 1 source(s)" in out and "not loaded (dry run)" in out
    assert not (tmp_path / "o").exists()


def test_a_real_run_checks_first_and_touches_nothing(tiny_llama_dir, chat_jsonl, tmp_path, capsys, machine):
    machine(False, set())
    out = tmp_path / "previous-run"
    out.mkdir()
    (out / "model.safetensors").write_text("earlier weights")
    code, _, err = sft(["--config", str(REPO / "recipes/sft/cpu-demo.yaml"), "--model_name_or_path",
                        str(tiny_llama_dir), "--dataset_name", str(chat_jsonl), "--output_dir", str(out),
                        "--overwrite_output_dir", "true", "--report_to", "wandb"], capsys)
    assert code == 2 and err.strip().startswith("error: report_to: wandb is not installed")
    assert (out / "model.safetensors").read_text() == "earlier weights"  # refused before anything was deleted


def tiny_config_dir(family: str, out_dir):
    """A checkpoint directory with only a config.json (the checks read no weights)."""
    from transformers import AutoConfig

    config = AutoConfig.for_model(family, vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                  num_attention_heads=2, num_key_value_heads=1, head_dim=8)
    config.save_pretrained(out_dir)
    return out_dir


@pytest.mark.parametrize("family, attn", [("gemma2", "sdpa"), ("gemma2", "eager"), ("gemma2", None),
                                          ("llama", "sdpa"), ("qwen2", "sdpa"), ("gemma", "sdpa")])
def test_attention_the_architecture_refuses(tmp_path, family, attn):
    """Refused exactly where transformers itself would refuse to build the model with that attention."""
    from transformers import AutoConfig, AutoModelForCausalLM

    model_dir = tiny_config_dir(family, tmp_path / family)
    problem = checks.attention_problem(str(model_dir), attn)
    try:
        AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_dir), attn_implementation=attn)
        refused = False
    except ValueError:
        refused = True
    assert refused == (family == "gemma2" and attn == "sdpa")
    if refused:
        assert problem == (f"attn_implementation: sdpa: Gemma2ForCausalLM ({model_dir}) does not support it: "
                           "set attn_implementation: eager (or another it supports)")
    else:
        assert problem is None


def test_dry_run_refuses_sdpa_for_gemma_2(tmp_path, capsys, machine):
    """The study recipes ask for sdpa; with a Gemma 2 checkpoint that is one line and exit 2 before anything
    loads, and eager passes."""
    machine(False, set())
    model_dir = tiny_config_dir("gemma2", tmp_path / "gemma2")
    data = write_jsonl(tmp_path / "chat.jsonl", [{"messages": [{"role": "user", "content": "hi"},
                                                               {"role": "assistant", "content": "yo"}]}])
    argv = ["--config", str(REPO / "recipes/sft/cpu-demo.yaml"), "--model_name_or_path", str(model_dir),
            "--dataset_name", str(data), "--output_dir", str(tmp_path / "o"), "--dry_run", "true"]
    code, _, err = sft([*argv, "--attn_implementation", "sdpa"], capsys)
    assert code == 2 and err.strip() == (f"error: attn_implementation: sdpa: Gemma2ForCausalLM ({model_dir}) does "
                                         "not support it: set attn_implementation: eager (or another it supports)")
    code, out, _ = sft([*argv, "--attn_implementation", "eager"], capsys)
    assert code == 0 and "sft recipe ok" in out
    assert not (tmp_path / "o").exists()


def test_series_dry_run_checks_every_recipe(tmp_path, capsys):
    import yaml

    (tmp_path / "sft.yaml").write_text("bf16: false\nreport_to: [wandb]\nmax_steps: 1\n")
    (tmp_path / "dpo.yaml").write_text("bf16: false\nmax_steps: 1\ndataset_name: missing/prefs.jsonl\n")
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text('{"model_type": "llama", "vocab_size": 100, "hidden_size": 8, '
                                      '"intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2}')
    series = {"name": "s", "output_dir": str(tmp_path / "out"), "train": {"launcher": "python"},
              "prepare": [{"name": "data", "command": ["python", "-c", "pass"],
                           "outputs": ["{output_dir}/data/chat.jsonl"]}],
              "sft": {"recipe": str(tmp_path / "sft.yaml"),
                      "overrides": {"dataset_name": "{output_dir}/data/chat.jsonl"}},  # made by prepare: fine
              "dpo": {"recipe": str(tmp_path / "dpo.yaml")},
              "answer": {"question_end": 2}, "judge": {"model": "j", "base_url": "http://127.0.0.1:9/v1"},
              "models": [{"name": "a", "size": "S", "construction": "scratch", "path": str(ckpt)},
                         {"name": "b", "size": "S", "construction": "scratch", "path": str(ckpt)}]}
    (tmp_path / "series.yaml").write_text(yaml.safe_dump(series))
    code, _, err = align_in_process(["series", str(tmp_path / "series.yaml"), "--dry-run"], capsys)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2, err[-2000:]
    assert errors == ["error: report_to: wandb is not installed: install it or drop it from report_to (report_to: "
                      "none logs to the console only) (in a/sft, b/sft)",
                      "error: dataset missing/prefs.jsonl[train]: missing/prefs.jsonl not found (in a/dpo, b/dpo)"]
    assert not (tmp_path / "out").exists()
