"""`mmprompt-lab`: a thin shell over the functions the notebooks call.

    mmprompt-lab tune --method maple                       # ToyCLIP on toyworld/polygons, CPU-sized
    mmprompt-lab tune --method coop --dataset dtd --root ~/data --model ViT-B-16 --pretrained openai
    mmprompt-lab eval --checkpoint runs/maple-toyworld_shapes-seed1
    mmprompt-lab list
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from .engine.train import configure_threads


def _parse_value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)


def _overrides(pairs: list[str]) -> dict:
    """`--set n_ctx=4 --set ctx_init="a photo of a"` → {"n_ctx": 4, "ctx_init": "a photo of a"}."""
    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise SystemExit(f"--set expects KEY=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        out[key.strip()] = _parse_value(value.strip())
    return out


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="toyclip", help="'toyclip' (default, embedded) or an open_clip name, e.g. ViT-B-16")
    p.add_argument("--pretrained", default=None, help="open_clip tag (e.g. openai, from the local cache) or a weights file")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 … (default: cuda if available)")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads (default: 1 for toyclip — its ops are tiny and extra threads stall "
                        "on a busy CPU; torch's default otherwise)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")


def _add_data_args(p: argparse.ArgumentParser, default: str | None) -> None:
    p.add_argument("--dataset", default=default, help="a name from `mmprompt-lab list` (default: %(default)s)")
    p.add_argument("--root", default=None, help="folder holding the real datasets (not needed for ToyWorld)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmprompt-lab", description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("tune", help="learn prompts on a dataset, evaluate, write checkpoint + metrics.json")
    t.add_argument("--method", default="maple", help="a learner from `mmprompt-lab list` (default: maple)")
    # polygons: the suite on which the shipped ToyCLIP's features leave room that prompts can use
    # (README, "Results on ToyWorld"); shapes is harder than this ToyCLIP can see
    _add_data_args(t, "toyworld/polygons")
    t.add_argument("--shots", type=int, default=16, help="images per class for training (0 = all)")
    t.add_argument("--base2new", action="store_true", help="train on base classes; report base, novel and HM")
    t.add_argument("--epochs", type=int, default=None, help="default: the method's official preset")
    t.add_argument("--lr", type=float, default=None)
    t.add_argument("--batch-size", type=int, default=None)
    t.add_argument("--accumulate", type=int, default=1, help="gradient accumulation steps")
    t.add_argument("--seed", type=int, default=1)
    t.add_argument("--set", action="append", metavar="KEY=VALUE", help="learner option, e.g. --set n_ctx=4")
    t.add_argument("--out", default=None, help="output folder (default: runs/<method>-<dataset>-seed<seed>)")
    t.add_argument("--no-zeroshot", action="store_true", help="skip the zero-shot reference evaluation")
    t.add_argument("--no-progress", action="store_true")
    _add_model_args(t)

    e = sub.add_parser("eval", help="evaluate a checkpoint (default: on the data it was tuned for)")
    e.add_argument("--checkpoint", required=True, help="folder written by `tune`")
    _add_data_args(e, None)
    e.add_argument("--split", default="test")
    e.add_argument("--subsample", default=None, choices=["all", "base", "novel"])
    e.add_argument("--out", default=None, help="where to write metrics.json (default: <checkpoint>/eval)")
    e.add_argument("--device", default=None)
    e.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    e.add_argument("--threads", type=int, default=None, help="CPU threads (default: 1 for toyclip)")
    e.add_argument("--json", action="store_true")

    sub.add_parser("list", help="methods, datasets and models")

    p = sub.add_parser("pretrain", help="pretrain ToyCLIP on ToyWorld (resumable), optionally export weights")
    p.add_argument("--out", default="runs/toyclip", help="run folder (checkpoints; resumed if present)")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--export", default=None, help="write the fp16 weights file here when done")

    try:
        from .data import cli as data_cli

        data_cli.add_parser(sub)
    except ImportError:  # pragma: no cover - the data CLI ships with the package
        pass
    try:
        from .protocols import cli as protocol_cli

        protocol_cli.add_parsers(sub)
    except ImportError:
        pass
    return parser


def _print_metrics(metrics: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(metrics, indent=2))
        return
    keys = [k for k in ("accuracy", "base", "novel", "hm", "zeroshot_accuracy", "zeroshot_base",
                        "zeroshot_novel", "zeroshot_hm") if k in metrics]
    print("  ".join(f"{k}={metrics[k]:.2f}" for k in keys))


def cmd_tune(args) -> int:
    import mmprompt_lab as mpl

    configure_threads(args.threads, args.model, args.device)
    clip = mpl.load_clip(args.model, pretrained=args.pretrained, device=args.device)
    shots = args.shots or None
    subsample = "base" if args.base2new else "all"
    load = lambda split, sub: mpl.load_dataset(args.dataset, split=split, root=args.root,  # noqa: E731
                                               shots=shots, seed=args.seed, subsample=sub)
    train = load("train", subsample)
    learner = mpl.create_learner(args.method, clip, train.classnames, **_overrides(args.set))
    out = Path(args.out or f"runs/{learner.name}-{args.dataset.replace('/', '_')}-seed{args.seed}")
    t0 = time.time()
    history = mpl.fit(learner, train, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                      device=args.device, precision=args.precision, accumulate=args.accumulate,
                      progress=not args.no_progress)
    train_s = time.time() - t0
    tests = {"base": load("test", "base"), "novel": load("test", "novel")} if args.base2new else {"all": load("test", "all")}
    metrics = _evaluate_all(learner, tests, args)
    if not args.no_zeroshot and learner.name != "zeroshot":
        zs = mpl.create_learner("zeroshot", clip, train.classnames, templates=(train.template,))
        metrics |= {f"zeroshot_{k}": v for k, v in _evaluate_all(zs, tests, args).items() if k in ("accuracy", "base", "novel", "hm")}
    metrics |= {"method": learner.name, "dataset": args.dataset, "shots": shots, "seed": args.seed,
                "backbone": clip.id, "trainable_parameters": learner.num_trainable(),
                "train_seconds": round(train_s, 1), "final_loss": history.epoch_loss[-1]}
    data_args = {"dataset": args.dataset, "root": args.root, "shots": shots, "seed": args.seed,
                 "base2new": args.base2new}
    learner.set_classnames(train.classnames)
    mpl.save_learner(learner, out, extra={"data": data_args, "history": history.to_dict()})
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    if not args.json:
        print(f"{learner.name} on {args.dataset} ({len(train)} training images, {train_s:.0f} s) → {out}")
    _print_metrics(metrics, args.json)
    return 0


def _evaluate_all(learner, tests: dict, args) -> dict:
    """Evaluate on one test set ({"all": ds}) or on base and novel ({"base": ds, "novel": ds})."""
    import mmprompt_lab as mpl

    results = {k: mpl.evaluate(learner, ds, device=args.device, precision=args.precision) for k, ds in tests.items()}
    if "all" in results:
        r = results["all"]
        return {"accuracy": r["accuracy"], "macro_accuracy": r["macro_accuracy"],
                "per_class_accuracy": r["per_class_accuracy"]}
    bn = mpl.base_novel(results["base"], results["novel"])
    return {"accuracy": bn["base"], **bn}


def cmd_eval(args) -> int:
    import mmprompt_lab as mpl
    from .engine.checkpoint import read_card

    card = read_card(args.checkpoint)
    configure_threads(args.threads, card["backbone"].split(":")[0], args.device)
    data = card.get("data", {})
    learner = mpl.load_learner(args.checkpoint, device=args.device)
    dataset = args.dataset or data.get("dataset")
    if dataset is None:
        raise SystemExit("this checkpoint does not say which data it was tuned on; pass --dataset")
    root = args.root or data.get("root")
    subsample = args.subsample or ("base2new" if data.get("base2new") and not args.dataset else "all")
    load = lambda sub: mpl.load_dataset(dataset, split=args.split, root=root, seed=data.get("seed", 1),  # noqa: E731
                                        subsample=sub)
    tests = {"base": load("base"), "novel": load("novel")} if subsample == "base2new" else {"all": load(subsample)}
    metrics = _evaluate_all(learner, tests, args) | {"method": card["method"], "dataset": dataset,
                                                     "split": args.split, "checkpoint": str(args.checkpoint)}
    out = Path(args.out or Path(args.checkpoint) / "eval")
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    _print_metrics(metrics, args.json)
    return 0


def cmd_list(args) -> int:
    import open_clip

    import mmprompt_lab as mpl

    print("methods: ", ", ".join(mpl.list_learners()))
    print("datasets:", ", ".join(mpl.list_datasets()))
    print("models:   toyclip (embedded) and open_clip ViTs, e.g.",
          ", ".join(m for m in open_clip.list_models() if m.startswith("ViT-B-16"))[:200])
    return 0


def cmd_pretrain(args) -> int:
    from .toyclip import export_weights, pretrain, write_train_log

    history = pretrain(args.out, steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                       threads=args.threads)
    if history:
        print(f"step {history[-1]['step']}: loss {history[-1]['loss']:.4f}")
    if args.export:
        weights = export_weights(Path(args.out) / "checkpoint.safetensors", args.export)
        log = write_train_log(Path(args.out), weights.with_name(weights.stem + "_train_log.json"))
        print(f"weights → {weights}, training log → {log}")
    return 0


COMMANDS = {"tune": cmd_tune, "eval": cmd_eval, "list": cmd_list, "pretrain": cmd_pretrain}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        if hasattr(args, "func"):
            return args.func(args)
        return COMMANDS[args.command](args)
    except (ValueError, FileNotFoundError, FloatingPointError, RuntimeError, ImportError) as err:
        if args.verbose:
            raise
        print(f"mmprompt-lab {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
