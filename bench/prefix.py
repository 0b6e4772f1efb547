"""Step time and peak memory of the text fast paths, each on and off, side by side (docs/design.md §7).

    python bench/prefix.py                                  # the README grid: ToyCLIP every learner,
                                                            # ViT-B/16 coop and maple
    python bench/prefix.py --model toyclip --classes 10 100 500
    python bench/prefix.py --model vit-b16 --methods coop --classes 500 --modes shared chunked
    python bench/prefix.py --model vit-b16 --modes reference chunked   # the official cost model vs ours
    python bench/prefix.py --model vit-b16 --classes 10 100 --modes chunked --precision fp32 bf16   # CPU autocast

Modes (one optimizer step = forward + `training_loss` + backward + SGD, batch 4, CPU, fp32 unless
--precision bf16):
    reference   the official cost model: every text position of the context (77 on ViT-B/16), no EOT cut,
                no prefix sharing, the image tower at every step
    plain       this package's plain pass: text cut after the longest EOT, no prefix sharing
    shared      + the shared prefix, the class suffix in one piece
    chunked     + the suffix in chunks of classes ("auto" size unless --chunk), with activation checkpointing
                when there is more than one chunk: the default
    nockpt      chunked without activation checkpointing (run only where chunked took several chunks)
    cached      chunked + cached frozen image features (learners with a frozen image tower only)

Each (model, method, classes, mode) runs in its own process, so its peak memory (max RSS, the frozen
model included) is its own; `model_mib` is the process's RSS once the model and learner are built,
before the first step. Step times are wall-clock and process CPU seconds (the CPU time of this
process over all its threads: less disturbed when other jobs share the machine). `text_eval_s` times
the no-grad text features of all classes (what `evaluate` computes once). Prints a table and saves
JSON after every row (--out).
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

MODES = ("reference", "plain", "shared", "chunked", "nockpt", "cached")
MODELS = {"toyclip": dict(methods=None, steps=10), "vit-b16": dict(methods=["coop", "maple"], steps=2)}


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def classnames(tokenizer, n: int) -> list[str]:
    """n two-word class names whose first words all differ (real class names rarely share a first word, and
    a shared one would be shared prefix too): whole-word tokens of CLIP's vocabulary, in vocabulary order."""
    words = [
        w[:-4] for _, w in sorted(tokenizer.decoder.items()) if w.endswith("</w>") and w[:-4].isalpha() and len(w) >= 9
    ]
    return [f"{words[i]} {words[(7 * i + 3) % len(words)]}" for i in range(n)]


def _clip(model: str):
    import open_clip
    import torch

    import mmprompt_lab as mpl
    from mmprompt_lab.backbone import FrozenCLIP

    if model == "toyclip":
        return mpl.load_clip("toyclip", device="cpu", threads=torch.get_num_threads())
    torch.manual_seed(0)
    net = open_clip.create_model("ViT-B-16-quickgelu", pretrained=None)
    return FrozenCLIP(net, open_clip.get_tokenizer("ViT-B-16-quickgelu"), "ViT-B-16-quickgelu")


def _reference_text(clip) -> None:
    """The official cost model: every position of the context, no cut after the EOT (this process only)."""

    def full(emb, eot):
        return emb + clip.text.positional_embedding, clip.text.attn_mask  # (N, L, Dt), (L, L)

    clip.start_text = full


def configure(learner, mode: str, chunk: int) -> None:  # chunk 0 = "auto"
    """Switch the learner's text pass to `mode` (this process only)."""
    from mmprompt_lab.learners import base

    learner.shared_prefix = mode not in ("reference", "plain")
    learner.text_chunk = (chunk or "auto") if mode in ("nockpt", "chunked", "cached") else None
    if mode == "reference":
        _reference_text(learner.clip)
    if mode == "nockpt":
        base.run_shared = functools.partial(base.run_shared, checkpoint=False)


def one(
    model: str,
    method: str,
    classes: int,
    mode: str,
    batch: int,
    steps: int,
    chunk: int,
    precision: str = "fp32",
    threads: int = 1,
) -> dict:
    """Time `steps` optimizer steps (after one warm-up step) of one configuration, in this process."""
    import torch

    torch.set_num_threads(threads)

    from mmprompt_lab.engine.train import autocast, image_features_cacheable
    from mmprompt_lab.learners import create_learner
    from mmprompt_lab.learners.base import ImageFeatures

    torch.set_flush_denormal(True)
    clip = _clip(model)
    names = classnames(clip.tokenizer, classes)
    learner = create_learner(method, clip, names, seed=1).train()
    if mode == "cached" and not image_features_cacheable(learner):  # e.g. IVLP: vision prompts by config
        return {"skipped": f"{method} prompts or conditions on the image tower: no cached mode"}
    configure(learner, mode, chunk)
    opt = torch.optim.SGD(learner.trainable_parameters(), lr=1e-3, momentum=0.9)
    torch.manual_seed(0)
    images = torch.randn(batch, 3, clip.image_size, clip.image_size)  # (B, 3, H, W)
    labels = torch.arange(batch) % classes  # (B,)
    if mode == "cached":
        with torch.no_grad():
            images = ImageFeatures(learner.encode_image(images))  # (B, E), computed once
    chunks, suffix = _chunks(learner)
    model_mib, times, cpu = _rss_mib(), [], []
    for n in range(steps + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        with autocast(torch.device("cpu"), precision):
            loss, _ = learner(images, labels=labels)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if n:  # the first step warms up
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    text_eval = None
    if not learner.conditional:
        learner.eval()
        with torch.no_grad(), autocast(torch.device("cpu"), precision):
            t0 = time.perf_counter()
            learner.encode_text()
            text_eval = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "model": model,
        "method": method,
        "classes": classes,
        "mode": mode,
        "batch": batch,
        "precision": precision,
        "step_s_median": statistics.median(times),
        "step_s": times,
        "cpu_s_median": statistics.median(cpu),
        "cpu_s": cpu,
        "peak_mib": peak,
        "model_mib": model_mib,
        "text_eval_s": text_eval,
        "threads": torch.get_num_threads(),
        "chunks": chunks,
        "suffix_shape": suffix,
    }


def _chunks(learner) -> tuple[int, list[int] | None]:
    """(suffix chunks per block, suffix shape) of the configured text pass; (0, None) for the plain pass."""
    import torch

    from mmprompt_lab.text_prefix import chunk_size

    if learner.conditional or not learner.has_text_prompts:
        return 0, None
    with torch.no_grad():
        text = learner.shared_text(*learner.text_prompts(learner.begin_pass()))
    if text is None:
        return 0, None
    size = chunk_size(learner.text_chunk, text.suffix) or text.suffix.shape[0]
    return -(-text.suffix.shape[0] // size), list(text.suffix.shape)


def _table(rows: list[dict]) -> str:
    lines = [
        "| model | method | classes | mode | precision | step (s) | step CPU (s) | peak RSS (MiB) "
        "| model RSS (MiB) | text eval (s) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(
                f"| {r['model']} | {r['method']} | {r['classes']} | {r['mode']} | {r['precision']} | "
                f"{r['error']} | | | | |"
            )
            continue
        te = f"{r['text_eval_s']:.3f}" if r["text_eval_s"] is not None else "—"
        lines.append(
            f"| {r['model']} | {r['method']} | {r['classes']} | {r['mode']} | {r['precision']} | "
            f"{r['step_s_median']:.3f} | "
            f"{r['cpu_s_median']:.3f} | "
            f"{r['peak_mib']:.0f} | {r['model_mib']:.0f} | {te} |"
        )
    return "\n".join(lines)


def plan(model: str, methods: list[str], classes: list[int], modes: list[str], chunk: int) -> list[tuple]:
    """The configurations to run: the shared-prefix modes only for learners that can take that pass, `cached`
    only for learners with a frozen image tower (`nockpt` is dropped later where `chunked` took one chunk)."""
    from mmprompt_lab.learners import get_learner_class

    out = []
    for method in methods:
        cls = get_learner_class(method)
        for c in classes:
            for mode in modes:
                if mode == "cached" and (cls.has_vision_prompts or cls.conditional):
                    continue
                if mode in ("shared", "chunked", "nockpt") and (
                    cls.conditional or not cls.has_text_prompts or not cls.shares_text_prefix
                ):
                    continue  # the plain pass: nothing to switch
                out.append((model, method, c, mode))
    return out


def main() -> None:
    from mmprompt_lab.learners import list_learners

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", nargs="*", default=list(MODELS), choices=list(MODELS))
    p.add_argument(
        "--methods", nargs="*", default=None, help="default: every learner on ToyCLIP, coop and maple on ViT-B/16"
    )
    p.add_argument("--classes", nargs="*", type=int, default=[10, 100, 500])
    p.add_argument("--modes", nargs="*", default=list(MODES), choices=MODES)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=None, help="measured steps per configuration (default per model)")
    p.add_argument("--chunk", type=int, default=0, help='classes per suffix chunk; 0 = the default, "auto"')
    p.add_argument(
        "--precision",
        nargs="*",
        default=["fp32"],
        choices=["fp32", "bf16"],
        help="bf16 = autocast on the CPU; several: each configuration in each, side by side",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads per configuration (1: its CPU seconds are its work, even on a shared machine)",
    )
    p.add_argument(
        "--skip-reference-above",
        type=int,
        default=None,
        help="skip the reference mode above this many classes (memory: ~16 GB at 500 on ViT-B/16)",
    )
    p.add_argument("--out", default="bench/results/prefix_cpu.json")
    p.add_argument("--one", nargs=4, metavar=("MODEL", "METHOD", "CLASSES", "MODE"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        model, method, classes, mode = args.one
        steps = args.steps or MODELS[model]["steps"]
        print(
            json.dumps(
                one(model, method, int(classes), mode, args.batch, steps, args.chunk, args.precision[0], args.threads)
            )
        )
        return
    machine = {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()}
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    rows: list[dict] = []
    for model in args.model:
        methods = args.methods or MODELS[model]["methods"] or [m for m in list_learners() if m != "zeroshot"]
        for (model_, method, classes, mode), precision in itertools.product(
            plan(model, methods, args.classes, args.modes, args.chunk), args.precision
        ):
            if mode == "reference" and args.skip_reference_above and classes > args.skip_reference_above:
                continue
            if mode == "nockpt" and not any(
                r.get("chunks", 0) > 1
                and r["mode"] == "chunked"
                and r["method"] == method
                and r["classes"] == classes
                and r["model"] == model
                for r in rows
            ):
                continue  # one chunk: no checkpointing to switch off
            cmd = [
                sys.executable,
                __file__,
                "--one",
                model_,
                method,
                str(classes),
                mode,
                "--batch",
                str(args.batch),
                "--chunk",
                str(args.chunk),
                "--precision",
                precision,
                "--threads",
                str(args.threads),
            ]
            cmd += ["--steps", str(args.steps)] if args.steps else []
            done = subprocess.run(cmd, capture_output=True, text=True)
            row = (
                {
                    "model": model,
                    "method": method,
                    "classes": classes,
                    "mode": mode,
                    "precision": precision,
                    "error": (done.stderr.strip().splitlines() or ["killed"])[-1],
                }
                if done.returncode
                else json.loads(done.stdout.strip().splitlines()[-1])
            )
            if "skipped" in row:
                continue
            rows.append(row)
            print(_table([row]).splitlines()[-1], flush=True)
            with open(args.out, "w") as f:  # after every row, so an interrupted run keeps what it measured
                json.dump({"machine": machine, "command": " ".join(sys.argv), "rows": rows}, f, indent=2)
    print(_table(rows))
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
