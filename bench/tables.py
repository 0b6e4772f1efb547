"""Markdown tables (the README's Benchmarks section) from the JSON that the bench scripts saved.

    python bench/tables.py                     # every table whose JSON exists under bench/results
    python bench/tables.py --prefix bench/results/prefix_vit_b16_cpu.json

Step times are the process CPU seconds of one optimizer step at one thread (median), memory the peak
RSS of the configuration's own process; ratios are between rows of the same run.
"""

from __future__ import annotations

import argparse
import json
import os

COLUMNS = (
    ("reference", "reference"),
    ("plain", "plain (EOT cut)"),
    ("shared", "+ shared prefix"),
    ("chunked", "+ chunks (default)"),
    ("nockpt", "chunks, no checkpoint"),
    ("cached", "default + cached images"),
)
SHARED_MODES = ("shared", "chunked", "nockpt")


def _load(path: str) -> dict | None:
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def _cell(row: dict | None, unit: str) -> str:
    if row is None:
        return "—"
    if "error" in row:
        return "error"
    if row["mode"] in SHARED_MODES and row.get("suffix_shape") is None:
        return "plain pass"  # the learner does not take the shared-prefix pass
    t = row["cpu_s_median"]
    time = f"{t * 1000:.0f} ms" if unit == "ms" else f"{t:.2f} s"
    return f"{time} / {row['peak_mib'] / 1024:.2f} GiB"


def prefix_table(data: dict, unit: str) -> str:
    """One row per (method, classes): each mode's step CPU time / peak RSS, and reference ÷ default."""
    rows = {(r["method"], r["classes"], r["mode"]): r for r in data["rows"] if r.get("precision", "fp32") == "fp32"}
    order = list(dict.fromkeys(m for m, _, _ in rows))
    keys = sorted({(m, c) for m, c, _ in rows}, key=lambda k: (order.index(k[0]), k[1]))
    present = [(mode, title) for mode, title in COLUMNS if any(k[2] == mode for k in rows)]
    head = "| method | classes | " + " | ".join(t for _, t in present) + " | reference ÷ default | plain ÷ default |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for method, classes in keys:
        cells = [_cell(rows.get((method, classes, mode)), unit) for mode, _ in present]
        best = rows.get((method, classes, "chunked"))
        if best and best.get("suffix_shape") is None:  # the default is the plain pass for this learner
            best = rows.get((method, classes, "plain"))
        ratios = []
        for base in ("reference", "plain"):
            other = rows.get((method, classes, base))
            ok = best and other and "error" not in best and "error" not in other
            ratios.append(f"{other['cpu_s_median'] / best['cpu_s_median']:.1f}×" if ok else "—")
        lines.append(f"| {method} | {classes} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
    return "\n".join(lines)


def precision_table(data: dict) -> str:
    rows = {(r["method"], r["classes"], r["precision"]): r for r in data["rows"] if "error" not in r}
    lines = [
        "| method | classes | fp32 step (CPU s) | bf16 autocast step (CPU s) | fp32 ÷ bf16 |",
        "|---|---|---|---|---|",
    ]
    for method, classes in sorted({(m, c) for m, c, _ in rows}):
        a, b = rows.get((method, classes, "fp32")), rows.get((method, classes, "bf16"))
        if a and b:
            lines.append(
                f"| {method} | {classes} | {a['cpu_s_median']:.2f} | {b['cpu_s_median']:.2f} | "
                f"{a['cpu_s_median'] / b['cpu_s_median']:.2f}× |"
            )
    return "\n".join(lines)


def recipe_table(data: dict) -> str:
    lines = ["| setting | accuracy per seed (%) | mean (%) | training CPU time (mean) |", "|---|---|---|---|"]
    for s in data["summary"]:
        name = f"cache_views={s['cache_views']}" if s["cache_views"] else s["precision"]
        if not s["cache_views"] and "cache" in data["command"]:
            name = "fresh augmentation (official)"
        lines.append(
            f"| {name} | {', '.join(f'{a:.2f}' for a in s['accuracy'])} | {s['mean_accuracy']:.2f} | "
            f"{s['mean_train_cpu_s']:.0f} s |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", default="bench/results")
    args = p.parse_args()
    r = args.results
    for name, unit in (("prefix_vit_b16_cpu.json", "s"), ("prefix_toyclip_cpu.json", "ms")):
        data = _load(os.path.join(r, name))
        if data:
            print(f"### {name}\n\n`{data['command']}`\n\n{prefix_table(data, unit)}\n")
    data = _load(os.path.join(r, "precision_vit_b16_cpu.json"))
    if data:
        print(f"### precision_vit_b16_cpu.json\n\n`{data['command']}`\n\n{precision_table(data)}\n")
    for name in ("recipes_cache_cpu.json", "recipes_bf16_cpu.json"):
        data = _load(os.path.join(r, name))
        if data:
            print(f"### {name}\n\n`{data['command']}`\n\n{recipe_table(data)}\n")


if __name__ == "__main__":
    main()
