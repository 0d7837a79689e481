"""The curves of a long run: every held-out score of its eval.jsonl against images seen.

    python tools/campaign_curve.py RUN_DIR -o docs/campaign128_curve.png

One panel per measure, both directions in each: SWD at each Laplacian level (finest first, the
level where blocks and speckle show), the Lab colour distance (a colour cast or blotches, which
SWD cannot see), the detail ratio (1 is the real pictures' sharpness) and the face rate. Vertical
lines mark where the resolution changed. For the 128 px campaign (docs/quality.md) it shows which
measure moves when and whether the colour faults follow a level of SWD.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

DIRECTIONS = {"a2b": "photo -> anime", "b2a": "anime -> photo"}


def rows(run: Path) -> list[dict]:
    """The run's evaluations in order (a resumed run's file holds each count once)."""
    lines = (run / "eval.jsonl").read_text(encoding="utf-8").splitlines()
    return sorted((json.loads(line) for line in lines if line.strip()), key=lambda r: r["images_seen"])


def plot(run: Path, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = rows(run)
    if not data:
        raise SystemExit(f"{run}/eval.jsonl holds no evaluation yet")
    images = [r["images_seen"] / 1000 for r in data]
    levels = max(len(r["a2b"]["swd"]) for r in data)
    panels = [(f"SWD x1e3, level {i} ({'finest' if i == 0 else 'coarser'})",
               lambda r, d, i=i: r[d]["swd"][i] * 1e3 if i < len(r[d]["swd"]) else None) for i in range(levels)]
    panels += [("colour distance (Lab W1, lower is better)", lambda r, d: r[d].get("colour")),
               ("detail ratio (1 = real pictures)", lambda r, d: r[d].get("detail_ratio")),
               ("face rate %", lambda r, d: 100 * r[d]["face_rate"])]
    columns = 3
    lines = (len(panels) + columns - 1) // columns
    fig, axes = plt.subplots(lines, columns, figsize=(5 * columns, 3.2 * lines), squeeze=False)
    changes = [images[i] for i in range(1, len(data)) if data[i]["resolution"] != data[i - 1]["resolution"]]
    for ax, (title, value) in zip(axes.flat, panels):
        for colour, (direction, name) in enumerate(DIRECTIONS.items()):
            points = [(x, value(r, direction)) for x, r in zip(images, data)]
            points = [(x, y) for x, y in points if y is not None]
            if points:
                ax.plot(*zip(*points), marker="o", markersize=3, color=f"C{colour}", label=name)
        for x in changes:
            ax.axvline(x, color="grey", linestyle=":", linewidth=1)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("thousand images seen")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a run folder with eval.jsonl")
    parser.add_argument("-o", "--out", type=Path, required=True, help="the PNG to write")
    args = parser.parse_args()
    plot(args.run, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
