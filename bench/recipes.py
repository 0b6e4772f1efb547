"""ToyWorld accuracy of two recipe changes, each against the official recipe, side by side.

    python bench/recipes.py --study cache      # polygons, coop, 16 shots, seeds 1 2 3: fresh augmentation vs
                                               # fit(cache_views=K) for K in --views, the same epochs
    python bench/recipes.py --study bf16       # polygons, maple, 16 shots, seeds 1 2 3, 5 epochs: fp32 vs bf16 autocast
                                               # (training and evaluation)

Runs on ToyCLIP, one thread, each run seeded as the experiment pipeline seeds it (`seed_everything`,
`create_learner(seed=)`, `fit(seed=)`). Prints a table and saves JSON after every run (--out).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time


def run(
    method: str,
    seed: int,
    epochs: int | None,
    precision: str = "fp32",
    cache_views: int | None = None,
    dataset: str = "toyworld/polygons",
    shots: int = 16,
) -> dict:
    """Train and score one seeded ToyWorld run → accuracy (%) and training seconds."""
    import mmprompt_lab as mpl
    from mmprompt_lab.seeding import seed_everything

    clip = mpl.load_clip("toyclip", device="cpu", threads=1)
    seed_everything(seed)
    train = mpl.load_dataset(dataset, split="train", shots=shots, seed=seed)
    test = mpl.load_dataset(dataset, split="test", seed=seed)
    learner = mpl.create_learner(method, clip, train.classnames, seed=seed)
    t0, c0 = time.perf_counter(), time.process_time()
    history = mpl.fit(
        learner, train, epochs=epochs, seed=seed, precision=precision, cache_views=cache_views, progress=False
    )
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    metrics = mpl.evaluate(learner, test, precision=precision)
    return {
        "method": method,
        "dataset": dataset,
        "shots": shots,
        "seed": seed,
        "epochs": len(history.lr),
        "precision": precision,
        "cache_views": cache_views,
        "accuracy": metrics["accuracy"],
        "train_s": seconds,
        "train_cpu_s": cpu,
        "final_loss": history.epoch_loss[-1],
    }


def settings(study: str, views: list[int]) -> tuple[str, int | None, list[dict]]:
    """(method, epochs, [fit settings]) of a study; the first setting is the official recipe."""
    if study == "cache":
        return "coop", None, [{"cache_views": None}] + [{"cache_views": k} for k in views]
    return "maple", 5, [{"precision": "fp32"}, {"precision": "bf16"}]


def summary(rows: list[dict]) -> list[dict]:
    """Mean accuracy and training time per setting, over seeds."""
    keys = sorted({(r["precision"], r["cache_views"] or 0) for r in rows})
    out = []
    for precision, views in keys:
        group = [r for r in rows if r["precision"] == precision and (r["cache_views"] or 0) == views]
        out.append(
            {
                "precision": precision,
                "cache_views": views or None,
                "seeds": [r["seed"] for r in group],
                "accuracy": [round(r["accuracy"], 2) for r in group],
                "mean_accuracy": statistics.mean(r["accuracy"] for r in group),
                "mean_train_s": statistics.mean(r["train_s"] for r in group),
                "mean_train_cpu_s": statistics.mean(r["train_cpu_s"] for r in group),
            }
        )
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--study", choices=["cache", "bf16"], required=True)
    p.add_argument("--seeds", nargs="*", type=int, default=[1, 2, 3])
    p.add_argument("--views", nargs="*", type=int, default=[4, 16], help="K for the cache study")
    p.add_argument("--epochs", type=int, default=None, help="default: the method's preset (coop 200) / 5 for bf16")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    method, epochs, grid = settings(args.study, args.views)
    epochs = args.epochs or epochs
    out = args.out or f"bench/results/recipes_{args.study}_cpu.json"
    machine = {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()}
    rows = []
    for seed in args.seeds:
        for setting in grid:
            rows.append(run(method, seed, epochs, **setting))
            r = rows[-1]
            print(
                f"{method} seed {seed} {r['precision']} cache_views={r['cache_views']}: {r['accuracy']:.2f}% "
                f"({r['epochs']} epochs, {r['train_s']:.0f} s wall, {r['train_cpu_s']:.0f} s CPU)",
                flush=True,
            )
            with open(out, "w") as f:
                json.dump(
                    {"machine": machine, "command": " ".join(sys.argv), "rows": rows, "summary": summary(rows)},
                    f,
                    indent=2,
                )
    for s in summary(rows):
        print(
            f"{s['precision']:>5} cache_views={s['cache_views']}: mean {s['mean_accuracy']:.2f}% {s['accuracy']} "
            f"train {s['mean_train_s']:.0f} s wall, {s['mean_train_cpu_s']:.0f} s CPU"
        )
    print(f"saved {out}")


if __name__ == "__main__":
    main()
