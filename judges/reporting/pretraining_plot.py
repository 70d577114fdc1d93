"""The report's pretraining plot: each model's training loss against the compute spent on it, its
ancestors' included (the study's Figure 2: a model grown and trained further, against one trained from
scratch on the same compute).

Its sources come from the series (`<output_dir>/pretraining.json`, align/series/pretraining.py): per
model, the continued-pretraining output folders of its chain, oldest first, each with its parameter
count N. Each folder's trainer log (trainer_state.json `log_history`) gives loss against tokens; a
link's FLOPs are 6·N·tokens, after everything the links before it trained (their run cards'
`tokens_trained`, else their last logged token count).
"""

from __future__ import annotations

import json
from pathlib import Path

from align.plumbing.errors import UserError


def _read_json(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"{path}: {what} cannot be read ({getattr(err, 'msg', None) or err})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: {what}: expected a JSON object")
    return data


def _link_points(folder: Path) -> tuple[list[tuple[float, float]], float | None]:
    """(tokens, loss) of every logged step of one pretraining run, and the tokens it trained in all
    (None when the run has no log yet)."""
    state = folder / "trainer_state.json"
    if not state.is_file():
        return [], None
    log = _read_json(state, "trainer state").get("log_history") or []
    card = folder / "run_card.json"
    per_step = (_read_json(card, "run card").get("cpt") or {}).get("tokens_per_step") if card.is_file() else None
    points = []
    for row in log:
        if not isinstance(row, dict) or not isinstance(row.get("loss"), (int, float)):
            continue
        tokens = row.get("num_input_tokens_seen")
        if not isinstance(tokens, (int, float)) and per_step and isinstance(row.get("step"), int):
            tokens = row["step"] * per_step
        if isinstance(tokens, (int, float)):
            points.append((float(tokens), float(row["loss"])))
    trained = _read_json(card, "run card").get("tokens_trained") if card.is_file() else None
    return points, float(trained) if isinstance(trained, (int, float)) and trained else (
        points[-1][0] if points else None)


def load_curves(path: str | Path) -> dict[str, dict]:
    """model -> {size, construction, points: [(cumulative FLOPs, loss)]}, from the series' sources file.
    A chain is followed as far as its runs have logs (a later link's offset needs the earlier ones)."""
    path = Path(path)
    sources = _read_json(path, "pretraining sources")
    curves = {}
    for name, entry in (sources.get("entries") or {}).items():
        offset, points = 0.0, []
        for i, link in enumerate(entry.get("chain") or []):
            try:
                folder, n = Path(link["dir"]), float(link["params"])
            except (KeyError, TypeError, ValueError):
                raise UserError(f"{path}: entries.{name}.chain[{i}]: expected {{dir, params}} "
                                f"with a number of parameters") from None
            link_points, trained = _link_points(folder)
            points += [(offset + 6 * n * tokens, loss) for tokens, loss in link_points]
            if trained is None:
                break
            offset += 6 * n * trained
        if points:
            curves[name] = {"size": entry.get("size"), "construction": entry.get("construction"), "points": points}
    return curves


def plot_pretraining(curves: dict[str, dict], png: Path) -> Path | None:
    """Loss against cumulative FLOPs, one line per model (scratch dashed); None when there is nothing to draw."""
    if not curves:
        return None
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, curve in curves.items():
        flops, loss = zip(*curve["points"])
        ax.plot(flops, loss, label=f"{name} ({curve['construction']})", marker="." if len(flops) < 30 else None,
                linestyle="--" if curve["construction"] == "scratch" else "-")
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # decades only: minor labels collide
    ax.set_xlabel("cumulative training compute, FLOPs (6·N·D, ancestors included)")
    ax.set_ylabel("training loss")
    ax.set_title("Pretraining loss against compute")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png
