"""ToyCLIP training-step time on the CPU with 1, 2, … torch threads (what `--threads` defaults to).

    python bench/threads.py                          # coop and maple, batch 4 and 32, 1 and 2 threads
    python bench/threads.py --threads 1 2 4 --rounds 5

Each (method, batch, threads) runs in its own process; the settings are interleaved round by round
so that a noisy neighbour slows all of them alike. Reports the median step time per setting and the
ratio to one thread, measured side by side in this run. Prints a table and saves JSON (--out).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time


def one(method: str, batch: int, threads: int, steps: int) -> list[float]:
    """Step times (s) of `steps` optimizer steps after two warm-up steps, in this process."""
    import torch
    import torch.nn.functional as F

    import mmprompt_lab as mpl

    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    torch.manual_seed(0)
    clip = mpl.load_clip("toyclip")
    classnames = [f"class {i}" for i in range(12)]
    learner = mpl.create_learner(method, clip, classnames).train()
    opt = torch.optim.SGD(learner.trainable_parameters(), lr=1e-3, momentum=0.9)
    size = clip.image_size
    images = torch.randn(batch, 3, size, size)
    labels = torch.arange(batch) % len(classnames)
    times = []
    for n in range(steps + 2):
        t0 = time.perf_counter()
        loss = F.cross_entropy(learner(images), labels)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if n >= 2:
            times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", nargs="+", default=["coop", "maple"])
    p.add_argument("--batch", nargs="+", type=int, default=[4, 32])
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", default="bench/results/threads_cpu.json")
    p.add_argument("--one", nargs=3, metavar=("METHOD", "BATCH", "THREADS"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], int(args.one[1]), int(args.one[2]), args.steps)))
        return
    settings = [(m, b, t) for m in args.methods for b in args.batch for t in args.threads]
    samples: dict[tuple, list[float]] = {s: [] for s in settings}
    for r in range(args.rounds):
        for s in settings:
            cmd = [sys.executable, __file__, "--one", *map(str, s), "--steps", str(args.steps)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            samples[s] += json.loads(out.strip().splitlines()[-1])
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    rows = []
    for m, b, t in settings:
        med = statistics.median(samples[(m, b, t)])
        base = statistics.median(samples[(m, b, args.threads[0])])
        rows.append(
            {
                "method": m,
                "batch": b,
                "threads": t,
                "step_ms_median": round(1000 * med, 2),
                f"ratio_to_{args.threads[0]}_thread": round(med / base, 3),
            }
        )
    print(f"{'method':8s} {'batch':>5s} {'threads':>7s} {'step ms':>8s} {'ratio':>6s}")
    for row in rows:
        print(
            f"{row['method']:8s} {row['batch']:5d} {row['threads']:7d} {row['step_ms_median']:8.1f} "
            f"{list(row.values())[-1]:6.2f}"
        )
    meta = {
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "steps_per_process": args.steps,
        "rounds": args.rounds,
        "model": "toyclip",
        "classes": 12,
    }
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"meta": meta, "results": rows}, f, indent=1)
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
