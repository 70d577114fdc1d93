"""Demo wall time: `align series recipes/demo/series.yaml` from an empty output directory.

    python bench/bench_demo.py [--series recipes/demo/series.yaml] [--out outputs/bench-demo]

Measured in the same run, for comparison: the same command again (everything current: the cost
of a re-run that skips all stages), and the start-up of a training stage under
`accelerate launch` vs plain `python -m` (why the demo uses the latter). Prints a Markdown
table with per-stage times from the manifest; writes result.json and stages.png beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml


def timed(argv: list[str], log: Path | None = None) -> tuple[float, int]:
    started = time.time()
    with open(log, "w") if log else open(os.devnull, "w") as fh:
        rc = subprocess.run(argv, stdout=fh, stderr=subprocess.STDOUT).returncode
    return time.time() - started, rc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--series", default="recipes/demo/series.yaml")
    parser.add_argument("--out", default="outputs/bench-demo")
    args = parser.parse_args()
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    series = yaml.safe_load(Path(args.series).read_text())
    series["output_dir"] = str(out / "run")
    copy = out / "series.yaml"
    copy.write_text(yaml.safe_dump(series, sort_keys=False))
    align = [sys.executable, "-m", "align.cli", "series", str(copy)]

    full_s, rc = timed(align, out / "run.log")
    if rc != 0:
        print(f"demo failed (exit {rc}); see {out / 'run.log'}", file=sys.stderr)
        return 1
    rerun_s, rc_again = timed(align, out / "rerun.log")
    accel_s, _ = timed([sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                        "recipes/accelerate/single.yaml", "-m", "align.sft", "--help"])
    python_s, _ = timed([sys.executable, "-m", "align.sft", "--help"])

    manifest = json.loads((out / "run" / "manifest.json").read_text())["entries"]
    stages = [(entry, stage, rec.get("wall_s") or 0.0) for entry, recs in manifest.items()
              for stage, rec in recs.items()]
    stages = list(dict.fromkeys((e if s != "judge" else "(all)", s, w) for e, s, w in stages))  # judge: one call
    result = {"full_s": round(full_s, 1), "rerun_s": round(rerun_s, 1), "rerun_rc": rc_again,
              "accelerate_help_s": round(accel_s, 1), "python_help_s": round(python_s, 1),
              "nproc": os.cpu_count(), "stages": stages}
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 0.35 * len(stages) + 1))
    ax.barh([f"{e} {s}" for e, s, _ in stages][::-1], [w for _, _, w in stages][::-1])
    ax.set_xlabel("seconds")
    ax.set_title(f"align series demo: {full_s:.0f} s on {os.cpu_count()} CPU cores")
    fig.tight_layout()
    fig.savefig(out / "stages.png", dpi=100)

    print(f"| measure | seconds |\n|---|---|\n| demo, empty output dir | {full_s:.0f} |\n"
          f"| same command again (all stages current) | {rerun_s:.1f} ({rerun_s / full_s:.3f} x) |\n"
          f"| `accelerate launch -m align.sft --help` | {accel_s:.1f} |\n"
          f"| `python -m align.sft --help` | {python_s:.1f} (accelerate / python = {accel_s / python_s:.2f}) |")
    print("\n| stage | seconds |\n|---|---|")
    for entry, stage, wall in stages:
        print(f"| {entry} {stage} | {wall:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
