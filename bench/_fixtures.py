"""What the benchmarks borrow from the tests: the stand-ins in tests/fakes/ (the judge server that injects
latency, the tiny random checkpoints), loaded from their files. tests/ is not a package and stays off
sys.path, so a benchmark cannot pick up a test module, or a test's conftest, by accident."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

FAKES = Path(__file__).resolve().parent.parent / "tests" / "fakes"


def _fake(name: str):
    """tests/fakes/NAME.py as a module (each stand-in imports only the standard library and installed packages)."""
    key = f"bench_fakes_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, FAKES / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module  # before running it: its classes look their module up by name
        spec.loader.exec_module(module)
    return sys.modules[key]


def fake_judge_server(**settings):
    """tests/fakes/judge_server.py's FakeJudgeServer(**settings): a local OpenAI-compatible judge."""
    return _fake("judge_server").FakeJudgeServer(**settings)


def save_random_model(config, tok, out_dir: Path, seed: int = 0) -> Path:
    """tests/fakes/tiny_models.py's save_random_model: the tests' tiny checkpoints that say varied things."""
    return _fake("tiny_models").save_random_model(config, tok, out_dir, seed=seed)
