"""Where align relies on a library's internals, a change in the library gives a clear message or the
plain path, never a traceback or a silent yes (issue 24.6)."""

from __future__ import annotations

import logging
import types

import pytest
import torch
from test_checks import tiny_config_dir

from align.train import checks


def _remove_class_flag(monkeypatch, flag: str) -> None:
    """transformers renamed `flag`: no class in any model's ancestry has it."""
    import transformers
    from transformers import Gemma2PreTrainedModel, LlamaPreTrainedModel

    for cls in (Gemma2PreTrainedModel, LlamaPreTrainedModel, transformers.PreTrainedModel):
        if flag in vars(cls):
            monkeypatch.delattr(cls, flag)


@pytest.mark.parametrize("family", ["gemma2", "llama"])
def test_renamed_support_flag_is_a_clear_refusal_not_a_pass(tmp_path, monkeypatch, family):
    model_dir = tiny_config_dir(family, tmp_path / family)
    _remove_class_flag(monkeypatch, "_supports_sdpa")
    problem = checks.attention_problem(str(model_dir), "sdpa")
    assert problem is not None and "cannot check" in problem and "`_supports_sdpa`" in problem
    assert "attn_implementation: eager" in problem
    assert checks.attention_problem(str(model_dir), "eager") is None  # eager needs no flag


class _Tiny(torch.nn.Module):
    """Just enough of a transformers model for pack_linear_layers: one layer large enough to pack."""

    device, dtype = torch.device("cpu"), torch.float32

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(256, 256)

    def forward(self, x):
        return self.proj(x)


@pytest.mark.parametrize("missing", ["_reorder_linear_weight", "_linear_pointwise"])
def test_removed_torch_op_falls_back_to_plain_layers(monkeypatch, caplog, missing):
    from judges.answers.backends import hf_linear

    real = torch.ops.mkldnn
    kept = {name: getattr(real, name) for name in ("_reorder_linear_weight", "_linear_pointwise") if name != missing}
    monkeypatch.setattr(torch.ops, "mkldnn", types.SimpleNamespace(**kept))
    model = _Tiny().eval()
    x = torch.randn(3, 256)
    with torch.no_grad():
        before = model(x)
        with caplog.at_level(logging.INFO, logger=hf_linear.__name__):
            assert hf_linear.pack_linear_layers(model, rows_hint=4) == 0
        assert type(model.proj) is torch.nn.Linear
        torch.testing.assert_close(model(x), before, rtol=0, atol=0)
    assert "left unpacked" in caplog.text and missing in caplog.text
