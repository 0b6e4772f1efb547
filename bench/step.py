"""Time per training step and peak memory of every learner on a random-weight ViT-B/16.

    python bench/step.py                       # all learners, 10 and 100 classes, batch 4, CPU fp32
    python bench/step.py --methods coop maple --classes 10 --steps 2
    python bench/step.py --device cuda         # bf16 autocast on a GPU

Each (method, classes) runs in its own process, so its peak memory (max RSS on CPU, max allocated
on CUDA) is its own. Also measures the truncated text pass (cut after the longest EOT) against the
full 77-token pass, side by side in one process. Prints a table and saves JSON (--out).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

CLASSNAMES = [f"class number {i}" for i in range(1000)]


def _clip(device: str):
    import open_clip
    import torch

    from mmprompt_lab.backbone import FrozenCLIP

    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-16-quickgelu", pretrained=None)
    return FrozenCLIP(model, open_clip.get_tokenizer("ViT-B-16-quickgelu"), "ViT-B-16-quickgelu").to(device)


def one(method: str, classes: int, batch: int, steps: int, device: str) -> dict:
    """Time `steps` optimizer steps (after one warm-up) in this process."""
    import torch
    import torch.nn.functional as F

    from mmprompt_lab.engine.train import autocast
    from mmprompt_lab.learners import create_learner

    torch.set_flush_denormal(True)
    dev = torch.device(device)
    clip = _clip(device)
    learner = create_learner(method, clip, CLASSNAMES[:classes]).to(dev).train()
    opt = torch.optim.SGD(learner.trainable_parameters(), lr=1e-3, momentum=0.9)
    images = torch.randn(batch, 3, 224, 224, device=dev)
    labels = torch.arange(batch, device=dev) % classes
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for n in range(steps + 1):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with autocast(dev, "auto"):
            loss = F.cross_entropy(learner(images).float(), labels)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if n:  # the first step warms up
            times.append(time.perf_counter() - t0)
    peak = (
        torch.cuda.max_memory_allocated()
        if dev.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    )
    return {
        "method": method,
        "classes": classes,
        "batch": batch,
        "device": device,
        "precision": "bf16 autocast" if dev.type == "cuda" else "fp32",
        "step_s_median": statistics.median(times),
        "step_s": times,
        "peak_mem_mib": peak / 2**20,
        "trainable": learner.num_trainable(),
    }


def text_truncation(device: str, classes: int = 100, repeats: int = 3) -> dict:
    """Text tower forward over `classes` prompts: cut after the longest EOT vs all 77 positions."""
    import torch

    clip = _clip(device)
    tokens = clip.tokenize([f"a photo of a {c}." for c in CLASSNAMES[:classes]]).to(device)
    eot = tokens.argmax(-1)
    emb = clip.token_embedding(tokens)

    def cut():
        x, mask = clip.start_text(emb, eot)
        return clip.pool_text(clip.run(x, None, text_mask=mask)[0], eot)

    def full():
        x = emb + clip.text.positional_embedding
        return clip.pool_text(clip.run(x, None, text_mask=clip.text.attn_mask)[0], eot)

    timings = {"cut": [], "full": []}
    with torch.no_grad():
        for _ in range(repeats):  # interleaved, so machine noise hits both alike
            for name, fn in (("cut", cut), ("full", full)):
                t0 = time.perf_counter()
                fn()
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                timings[name].append(time.perf_counter() - t0)
        max_diff = float((cut() - full()).abs().max())
    c, f = statistics.median(timings["cut"]), statistics.median(timings["full"])
    return {
        "classes": classes,
        "cut_length": int(eot.max()) + 1,
        "full_length": clip.context_length,
        "cut_s": c,
        "full_s": f,
        "speedup": f / c,
        "max_abs_diff": max_diff,
    }


def main() -> None:
    from mmprompt_lab.learners import list_learners

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--methods", nargs="*", default=None)
    p.add_argument("--classes", nargs="*", type=int, default=[10, 100])
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default="bench/results/step.json")
    p.add_argument("--one", nargs=2, metavar=("METHOD", "CLASSES"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], int(args.one[1]), args.batch, args.steps, args.device)))
        return
    methods = args.methods or [m for m in list_learners() if m != "zeroshot"]
    machine = {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()}
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)

    def save(result: dict) -> None:  # after every row, so an interrupted run keeps what it measured
        with open(args.out, "w") as f:
            json.dump({"machine": machine, **result}, f, indent=2)

    rows = []
    for method in methods:
        for classes in args.classes:
            cmd = [
                sys.executable,
                __file__,
                "--one",
                method,
                str(classes),
                "--batch",
                str(args.batch),
                "--steps",
                str(args.steps),
                "--device",
                args.device,
            ]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode:
                rows.append({"method": method, "classes": classes, "error": done.stderr.strip().splitlines()[-1]})
            else:
                rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            r = rows[-1]
            print(
                f"{method:>9} C={classes:<4} "
                + (
                    f"step {r['step_s_median']:.2f} s  peak {r['peak_mem_mib']:.0f} MiB  trainable {r['trainable']:,}"
                    if "error" not in r
                    else r["error"]
                ),
                flush=True,
            )
            save({"steps": rows})
    trunc = text_truncation(args.device)
    print(
        f"text pass, 100 prompts: cut to {trunc['cut_length']} tokens {trunc['cut_s']:.2f} s vs "
        f"{trunc['full_length']} tokens {trunc['full_s']:.2f} s → {trunc['speedup']:.1f}× faster "
        f"(max |diff| {trunc['max_abs_diff']:.1e})"
    )
    save({"steps": rows, "text_truncation": trunc})
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
