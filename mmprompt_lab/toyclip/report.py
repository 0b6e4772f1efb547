"""What a ToyCLIP knows, per suite: zero-shot, a linear probe, the colour-only baseline, variance.

`python -m mmprompt_lab.toyclip.report [--weights PATH] [--write]` prints the table the README
shows; `--write` also stores the numbers in the suites' manifests ("measured") and in the training
log next to the shipped weights.

The linear probe (multinomial logistic regression on frozen, normalised image features of the
train split, scored on test) bounds what a prompt on the image side can reach without changing
features; zero-shot far below the probe = room for prompt tuning.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F

from ..toyworld.baselines import colour_baseline
from ..toyworld.suites import SUITES
from .evaluate import feature_variance, image_features, zero_shot_accuracy
from .model import DEFAULT_WEIGHTS, PREPROCESS, create_toyclip


def linear_probe(
    model,
    suite: str,
    preprocess: dict = PREPROCESS,
    classes: list[int] | None = None,
    weight_decay: float = 1e-3,
    steps: int = 200,
) -> float:
    """Test accuracy of a logistic-regression probe on frozen image features (train → test).

    Args:
        classes: restrict to these labels (e.g. the base half); None = all classes.
    """
    x, y = image_features(model, suite, preprocess, "train")  # (N, E), (N,)
    xt, yt = image_features(model, suite, preprocess, "test")
    if classes is not None:
        keep, keep_t = torch.isin(y, torch.tensor(classes)), torch.isin(yt, torch.tensor(classes))
        x, y, xt, yt = x[keep], y[keep], xt[keep_t], yt[keep_t]
    n_classes = int(max(y.max(), yt.max())) + 1
    g = torch.Generator().manual_seed(0)
    w = (0.01 * torch.randn(x.shape[1], n_classes, generator=g)).requires_grad_()
    b = torch.zeros(n_classes, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(10 * x @ w + b, y) + weight_decay * w.square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return (10 * xt @ w + b).argmax(-1).eq(yt).float().mean().item()


def suite_report(model, tokenizer, preprocess: dict = PREPROCESS, suites: list[str] | None = None) -> dict:
    """Per suite: chance, zero-shot (test, all classes), ratio to chance, colour-only baseline,
    feature variance, and linear probes (all classes, base half) where the suite has a train split."""
    out = {}
    for name in suites or list(SUITES):
        s = SUITES[name]
        n = len(s.classes)
        zs = zero_shot_accuracy(model, tokenizer, preprocess, name, "test")
        row = {
            "chance": round(1 / n, 4),
            "toyclip_zero_shot_test": round(zs, 4),
            "zero_shot_x_chance": round(zs * n, 2),
            "colour_only_baseline_test": round(colour_baseline(name), 4),
            "feature_variance_test": feature_variance(model, name, preprocess),
        }
        if "train" in s.sizes:
            row["linear_probe_test"] = round(linear_probe(model, name, preprocess), 4)
            row["linear_probe_base_test"] = round(linear_probe(model, name, preprocess, list(range((n + 1) // 2))), 4)
        out[name] = row
    return out


def format_table(report: dict) -> str:
    """Markdown table of a `suite_report`."""
    lines = [
        "| suite | classes | chance | zero-shot | × chance | colour only | linear probe (all / base) "
        "| variance intra / inter |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in report.items():
        probe = (
            f"{100 * r['linear_probe_test']:.1f} / {100 * r['linear_probe_base_test']:.1f} %"
            if "linear_probe_test" in r
            else "–"
        )
        v = r["feature_variance_test"]
        lines.append(
            f"| `toyworld/{name}` | {len(SUITES[name].classes)} | {100 * r['chance']:.1f} % "
            f"| {100 * r['toyclip_zero_shot_test']:.1f} % | {r['zero_shot_x_chance']:.1f} "
            f"| {100 * r['colour_only_baseline_test']:.1f} % | {probe} "
            f"| {v['intra']:.2f} / {v['inter']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", default=None, help="a ToyCLIP safetensors file (default: the shipped one)")
    p.add_argument("--suites", nargs="*", default=None)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--write", action="store_true", help="store the numbers in the manifests and the training log")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model, tokenizer, preprocess = create_toyclip(args.weights or True)
    report = suite_report(model, tokenizer, preprocess, args.suites)
    print(format_table(report))
    if args.write:
        from ..toyworld.manifest import write_manifests

        weights = Path(args.weights or DEFAULT_WEIGHTS)
        for row in report.values():
            row["weights"] = weights.name
        write_manifests(measured=report)
        log_path = weights.with_name("toyclip_train_log.json")
        if log_path.exists():
            log = json.loads(log_path.read_text())
            log.setdefault("final_test_measurements", {}).update(report)
            log_path.write_text(json.dumps(log, indent=1) + "\n")


if __name__ == "__main__":
    main()
