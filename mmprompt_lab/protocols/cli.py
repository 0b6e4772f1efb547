"""`mmprompt-lab run | table | predict`: the protocol runners, the aggregator and `predict` on the CLI.

    mmprompt-lab run base2new --methods zeroshot coop maple --epochs 2      # ToyCLIP on ToyWorld
    mmprompt-lab run base2new --method maple --model ViT-B-16 --pretrained openai --root ~/data
    mmprompt-lab run few-shot --method coop --shots 1 2 4 8 16 --datasets toyworld/patterns
    mmprompt-lab run domain-generalisation --methods zeroshot maple --preset transfer   # MaPLe's DG recipe
    mmprompt-lab table runs/protocols
    mmprompt-lab predict --checkpoint runs/protocols/checkpoints/<run> photo.jpg photos/ --topk 3

The top-level CLI (`mmprompt_lab.cli`) calls `add_parsers(subparsers)`; every sub-parser sets
`func`, which takes the parsed args and returns the exit code.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

PROTOCOL_CHOICES = ("few-shot", "base2new", "cross-dataset", "domain-generalisation")
DEFAULT_OUT = "runs/protocols"


def add_parsers(subparsers) -> None:
    """Add `run`, `table` and `predict` to the top-level CLI's sub-parsers."""
    r = subparsers.add_parser(
        "run",
        help="run an evaluation protocol over seeds; write results JSON + table",
        description="Run a protocol of docs/protocols.md (default: ToyCLIP on ToyWorld suites; "
        "with --root, the real datasets).",
    )
    r.add_argument("protocol", choices=PROTOCOL_CHOICES)
    r.add_argument("--method", default=None, help="one learner (see `mmprompt-lab list`)")
    r.add_argument(
        "--methods",
        nargs="+",
        default=None,
        help="several learners, e.g. zeroshot coop maple (default: zeroshot coop maple)",
    )
    r.add_argument(
        "--datasets",
        nargs="+",
        default=None,
        help="few-shot/base2new datasets (default: the ToyWorld suites, or the 11 CoOp datasets with --root)",
    )
    r.add_argument(
        "--source",
        default=None,
        help="cross-dataset/DG training dataset (default: toyworld/shapes, or imagenet with --root)",
    )
    r.add_argument("--targets", nargs="+", default=None, help="cross-dataset/DG test datasets")
    r.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    r.add_argument(
        "--shots",
        nargs="+",
        type=int,
        default=None,
        help="few-shot: K values (default 1 2 4 8 16); others: one K (default 16)",
    )
    r.add_argument("--epochs", type=int, default=None, help="default: the method's official preset")
    r.add_argument("--lr", type=float, default=None)
    r.add_argument("--batch-size", type=int, default=None)
    r.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="learner option for every method, e.g. --set n_ctx=4"
    )
    r.add_argument(
        "--preset",
        default=None,
        metavar="NAME",
        help="a named recipe of the method(s) instead of the "
        "official default, e.g. maple's 'transfer' for cross-dataset / domain generalisation (zeroshot, "
        "which trains nothing, ignores it)",
    )
    r.add_argument(
        "--test-per-class",
        type=int,
        default=None,
        help="quick runs: only the first N test images of each class (default: all, as the protocol says)",
    )
    r.add_argument("--model", default="toyclip", help="'toyclip' (default) or an open_clip name, e.g. ViT-B-16")
    r.add_argument("--pretrained", default=None, help="open_clip tag (e.g. openai) or a weights file")
    r.add_argument("--root", default=None, help="folder of the real datasets (check it: mmprompt-lab data verify)")
    r.add_argument("--download", action="store_true", help="allow downloading real weights not in the local cache")
    r.add_argument("--device", default=None)
    r.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    r.add_argument("--threads", type=int, default=None, help="CPU threads (default: 1 for toyclip)")
    r.add_argument(
        "--out",
        default=DEFAULT_OUT,
        help="results folder (default: %(default)s); trained learners "
        "go to OUT/checkpoints and are reused by later runs with the same settings",
    )
    r.add_argument("--no-figure", action="store_true", help="do not write the plotly figure")
    r.add_argument("--progress", action="store_true", help="show training progress bars")
    r.set_defaults(func=cmd_run)

    t = subparsers.add_parser("table", help="aggregate results JSONs: markdown tables + plotly figure")
    t.add_argument("paths", nargs="*", default=[DEFAULT_OUT], help="results folders or files (default: %(default)s)")
    t.add_argument("--out", default=None, help="report folder (default: <first folder>/report)")
    t.add_argument("--no-figure", action="store_true")
    t.set_defaults(func=cmd_table)

    p = subparsers.add_parser("predict", help="top-k classes with probabilities for your own images")
    p.add_argument("images", nargs="+", help="image files and/or folders (searched recursively)")
    p.add_argument("--checkpoint", required=True, help="a learner checkpoint folder (from tune or run)")
    p.add_argument("--topk", type=int, default=5)
    p.add_argument("--device", default=None)
    p.add_argument("--json", action="store_true", help="print the predictions as JSON")
    p.set_defaults(func=cmd_predict)


def cmd_run(args: argparse.Namespace) -> int:
    """Run a protocol for each method, then print the table of everything in the results folder."""
    from ..backbone import load_clip
    from ..config import parse_options
    from ..runs import check_writable
    from .aggregate import load_results, markdown_report, write_report
    from .runner import run_protocol

    protocol = args.protocol.replace("-", "_")
    if args.method and args.methods:
        raise ValueError("give --method or --methods, not both")
    methods = [args.method] if args.method else (args.methods or ["zeroshot", "coop", "maple"])
    presets = {method: method_preset(method, args.preset) for method in methods}  # checked before any work
    common = dict(
        seeds=args.seeds,
        root=args.root,
        out=args.out,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        options=parse_options(args.set),
        device=args.device,
        precision=args.precision,
        test_per_class=args.test_per_class,
        progress=args.progress,
    )
    if protocol == "few_shot":
        common |= {"datasets": args.datasets, "shots": args.shots or (1, 2, 4, 8, 16)}
    else:
        if args.shots and len(args.shots) != 1:
            raise ValueError(f"{args.protocol} takes one --shots value, got {args.shots}")
        common["shots"] = args.shots[0] if args.shots else 16
        if protocol == "base2new":
            common["datasets"] = args.datasets
        else:
            if args.datasets:
                raise ValueError(f"{args.protocol} uses --source and --targets, not --datasets")
            common |= {"source": args.source, "targets": args.targets}
    if protocol in ("few_shot", "base2new") and (args.source or args.targets):
        raise ValueError(f"{args.protocol} uses --datasets, not --source/--targets")
    from ..engine.train import configure_threads

    check_writable(Path(args.out))  # before any training
    configure_threads(args.threads, args.model, args.device)
    clip = load_clip(args.model, pretrained=args.pretrained, device=args.device, download=args.download or None)
    for method in methods:
        result = run_protocol(protocol, method, model=clip, preset=presets[method], **common)
        print(f"{result['method']}: {len(result['results'])} results in {result['seconds']:.0f} s → {result['path']}")
    report = write_report(args.out, figure=not args.no_figure)  # everything in the folder
    protocol_files = sorted(Path(args.out).glob(f"{protocol}-*.json"))  # this protocol, all methods run so far
    print(markdown_report(load_results(protocol_files)))
    print("written:", ", ".join(report["files"]))
    return 0


def method_preset(method: str, preset: str | None) -> str | None:
    """`--preset` for one method: None for zero-shot CLIP (it trains nothing); a method without that preset is
    an error naming the presets it has."""
    from ..learners import get_learner_class

    cls = get_learner_class(method)
    if preset is None or cls.name == "zeroshot":
        return None
    cls.named_preset(preset)
    return preset


def cmd_table(args: argparse.Namespace) -> int:
    """Print the markdown tables of the given results and write the report files."""
    from .aggregate import write_report

    report = write_report(args.paths, out=args.out, figure=not args.no_figure)
    print(report["markdown"])
    print("written:", ", ".join(report["files"]), file=sys.stderr)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """Print the top-k classes of each image (a table, or JSON with --json)."""
    from .predict import predict

    from ..engine import read_card
    from ..io import dumps

    classes = read_card(args.checkpoint)["classnames"]
    predictions = predict(args.checkpoint, args.images, topk=args.topk, device=args.device)
    if args.json:
        print(dumps(predictions))
        return 0
    shown = ", ".join(classes[:12]) + (f", … ({len(classes)} in all)" if len(classes) > 12 else "")
    print(f"a closed set: each image is ranked among the checkpoint's {len(classes)} classes only ({shown})")
    for pred in predictions:
        print(pred["image"])
        for rank, top in enumerate(pred["top"], start=1):
            print(f"  {rank}. {top['classname']:<30} {100 * top['probability']:6.2f} %")
    return 0
