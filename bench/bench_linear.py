"""Benchmark: SmolLM2-135M-Instruct's linear layers, plain `nn.Linear` vs packed once for oneDNN
(judges/answers/backends/hf_linear.py), as a decoding step runs them: every layer in the model's order, so
each weight arrives from memory (540 MB of float32 weights do not stay in cache), at the row counts a
decoding step has. One torch thread, CPU seconds, both sides in the same run, alternating.

    python bench/bench_linear.py [--rows 1,8,20,40,74] [--repeats 5] [--out-dir outputs/bench/linear]

Checks the packed outputs against the plain ones (largest difference, relative to the layer's largest
output) and writes summary.json with GFLOPS per side and the ratio for each row count.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def step_seconds(layers, inputs, repeats: int) -> float:
    """Least CPU seconds over `repeats` passes of every layer over its input (the first pass warms up)."""
    import torch

    best = float("inf")
    with torch.inference_mode():
        for _ in range(repeats + 1):
            started = time.process_time()
            for layer, x in zip(layers, inputs):
                layer(x)
            best = min(best, time.process_time() - started)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--rows", default="1,8,20,40,74", help="comma-separated row counts")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out-dir", default="outputs/bench/linear")
    args = parser.parse_args(argv)

    import torch
    from transformers import AutoModelForCausalLM

    from align.plumbing.packaged import export_smollm2
    from judges.answers.backends.hf_linear import PackedLinear

    torch.set_num_threads(1)
    model = AutoModelForCausalLM.from_pretrained(str(export_smollm2()), dtype=torch.float32).eval()
    plain = [m for m in model.modules() if type(m) is torch.nn.Linear]
    flops_per_row = sum(2 * m.in_features * m.out_features for m in plain)
    results = []
    for rows in [int(r) for r in args.rows.split(",")]:
        packed = [PackedLinear(m, rows) for m in plain]
        inputs = [torch.randn(rows, m.in_features) for m in plain]
        with torch.inference_mode():  # largest difference relative to the layer's largest output
            diff = max(float((p(x) - m(x)).abs().max() / m(x).abs().max()) for p, m, x in zip(packed, plain, inputs))
        plain_s = packed_s = float("inf")
        for _ in range(2):  # alternate, so a change in the machine's load reaches both sides
            plain_s = min(plain_s, step_seconds(plain, inputs, args.repeats))
            packed_s = min(packed_s, step_seconds(packed, inputs, args.repeats))
        row = {"rows": rows, "plain_ms": round(plain_s * 1e3, 2), "packed_ms": round(packed_s * 1e3, 2),
               "plain_gflops": round(rows * flops_per_row / plain_s / 1e9, 1),
               "packed_gflops": round(rows * flops_per_row / packed_s / 1e9, 1),
               "speedup": round(plain_s / packed_s, 2), "max_relative_diff": diff}
        results.append(row)
        print(f"{rows:3d} rows: plain {row['plain_ms']:8.2f} ms ({row['plain_gflops']:5.1f} GFLOPS), packed "
              f"{row['packed_ms']:8.2f} ms ({row['packed_gflops']:5.1f} GFLOPS): {row['speedup']:.2f}x, "
              f"largest difference {diff:.1e} of the largest output", flush=True)
    out = (REPO / args.out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    summary = {"model": "SmolLM2-135M-Instruct", "layers": len(plain), "threads": 1, "results": results}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
