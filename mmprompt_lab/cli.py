"""`mmprompt-lab`: a thin shell over the functions the notebooks call.

mmprompt-lab tune --method maple                       # ToyCLIP on toyworld/polygons, CPU-sized
mmprompt-lab tune --method coop --dataset dtd --root ~/data --model ViT-B-16 --pretrained openai
mmprompt-lab eval --checkpoint runs/maple-toyworld_shapes-seed1
mmprompt-lab list
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .config import parse_options
from .engine.train import configure_threads
from .io import dumps


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model", default="toyclip", help="'toyclip' (default, embedded) or an open_clip name, e.g. ViT-B-16"
    )
    p.add_argument(
        "--pretrained", default=None, help="open_clip tag (e.g. openai, from the local cache) or a weights file"
    )
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 … (default: cuda if available)")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads (default: 1 for toyclip — its ops are tiny and extra threads stall "
        "on a busy CPU; torch's default otherwise)",
    )
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.add_argument(
        "--download",
        action="store_true",
        help="allow downloading real weights that are not in the local cache (default: offline, the cache only)",
    )


def _add_data_args(p: argparse.ArgumentParser, default: str | None) -> None:
    p.add_argument("--dataset", default=default, help="a name from `mmprompt-lab list` (default: %(default)s)")
    p.add_argument("--root", default=None, help="folder holding the real datasets (not needed for ToyWorld)")


class _Version(argparse.Action):
    """`--version`: the package, torch, open_clip and Python versions (imports torch only when asked)."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, help="show the versions and exit")

    def __call__(self, parser, namespace, values, option_string=None):
        from .catalog import version_text

        print(version_text())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmprompt-lab", description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("--version", action=_Version)
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
    t.add_argument(
        "--preset",
        default=None,
        metavar="NAME",
        help="a named recipe of the method instead of its "
        "official default, e.g. maple's 'transfer' (cross-dataset / domain generalisation: depth 3, "
        "2 epochs, lr 0.0026); --epochs/--lr/--batch-size/--set still override it",
    )
    t.add_argument(
        "--out",
        default=None,
        help="output folder (default: a fresh runs/<method>-<dataset>-seed<seed>, numbered -2, -3, … when taken)",
    )
    t.add_argument("--overwrite", action="store_true", help="replace the run already in --out")
    t.add_argument(
        "--resume",
        action="store_true",
        help="continue the interrupted run of this command from its last finished epoch (same settings required)",
    )
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
    e.add_argument("--download", action="store_true", help="allow downloading the card's backbone weights")

    sub.add_parser("list", help="methods, datasets and models")

    n = sub.add_parser("notebooks", help="render the lessons as executed HTML")
    n.add_argument("action", choices=["render"])
    n.add_argument("paths", nargs="*", help="notebooks to render (default: notebooks/[0-9]*.ipynb here)")
    n.add_argument("--out", default="notebooks/html", help="folder for the HTML files (default: %(default)s)")
    n.add_argument("--ci", action="store_true", help="run at CI size (MMPROMPT_CI=1): minutes instead of ~15")

    p = sub.add_parser("pretrain", help="pretrain ToyCLIP on ToyWorld (resumable), optionally export weights")
    p.add_argument("--out", default="runs/toyclip", help="run folder (checkpoints; resumed if present)")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--export", default=None, help="write the fp16 weights file here when done")

    from .data import cli as data_cli
    from .protocols import cli as protocol_cli

    data_cli.add_parser(sub)
    protocol_cli.add_parsers(sub)
    return parser


def cmd_tune(args) -> int:
    from .backbone import load_clip
    from .engine import save_learner
    from .experiment import ExperimentSpec, run_experiment
    from .io import write_json
    from .learners import get_learner_class
    from .runs import RunFolder

    options = parse_options(args.set)
    get_learner_class(args.method).config_class.from_overrides(**options)  # bad options fail before any work
    spec = ExperimentSpec(
        args.method,
        args.dataset,
        shots=args.shots or None,
        seed=args.seed,
        base2new=args.base2new,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        accumulate=args.accumulate,
        options=options,
        root=args.root,
        zeroshot_reference=not args.no_zeroshot,
        precision=args.precision,
        preset=args.preset,
    )
    if args.out:
        run = RunFolder.open(args.out, overwrite=args.overwrite, resume=args.resume)
    else:
        name = f"{spec.method}-{spec.dataset.replace('/', '_')}-seed{spec.seed}"
        run = RunFolder.fresh(f"runs/{name}", resume=args.resume)
    record = {**spec.to_dict(), "model": args.model, "pretrained": args.pretrained}
    configure_threads(args.threads, args.model, args.device)
    with run:
        run.check_spec(record)
        clip = load_clip(args.model, pretrained=args.pretrained, device=args.device, download=args.download or None)
        say = (lambda *a: None) if args.json else print
        if run.resumed:
            say(f"resuming the interrupted run in {run.work}")
        try:
            result = run_experiment(
                spec,
                clip,
                device=args.device,
                progress=not args.no_progress,
                on_epoch_end=None if args.json else _print_epoch,
                checkpoint_dir=run.work,
            )
        except KeyboardInterrupt:
            again = " ".join(["mmprompt-lab", *args.argv] + ([] if args.out else ["--out", str(run.final)]))
            print(
                f"\ninterrupted: the finished epochs are kept in {run.work}; continue with: {again} --resume",
                file=sys.stderr,
            )
            return 130
        learner, history = result.learner, result.history
        metrics = {
            **result.metrics,
            "method": learner.name,
            "dataset": spec.dataset,
            "shots": spec.shots,
            "shots_used": result.train.info.get("shots_used", spec.shots),
            "seed": spec.seed,
            "backbone": clip.id,
            "trainable_parameters": learner.num_trainable(),
            "n_train": len(result.train),
            "n_test": {k: len(ds) for k, ds in result.tests.items()},
            "final_loss": history.epoch_loss[-1] if history else None,
            "notes": result.notes,
            "per_class_accuracy": result.evaluations[next(iter(result.tests))]["per_class_accuracy"],
        }
        data = {
            "dataset": spec.dataset,
            "root": spec.root,
            "shots": spec.shots,
            "seed": spec.seed,
            "base2new": spec.base2new,
        }
        save_learner(
            learner, run.work, extra={"data": data, "spec": record, "history": history.to_dict() if history else None}
        )
        write_json(run.work / "metrics.json", metrics)
        write_json(
            run.work / "run_info.json",
            {"train_seconds": result.train_seconds, "command": args.argv, "environment": _environment(clip)},
        )
        out = run.commit()
    if args.json:
        print(dumps(metrics))
        return 0
    _print_summary(result, metrics, out)
    return 0


def _print_epoch(state) -> None:
    h = state.history
    print(
        f"  epoch {state.epoch + 1}/{state.epochs}  loss {h.epoch_loss[-1]:.4f}  train accuracy "
        f"{h.epoch_accuracy[-1]:5.1f} %  lr {h.lr[-1]:.3g}"
    )


def _environment(clip) -> dict:
    from .protocols.runner import environment

    return environment(clip)


def _print_summary(result, metrics: dict, out: Path) -> None:
    spec, n = result.spec, metrics["n_test"]
    what = f"{len(result.train)} training images ({spec.shots or 'all'} per class, seed {spec.seed})"
    print(f"{result.learner.name} on {spec.dataset}: {what}, {result.train_seconds:.1f} s of training")
    zs = spec.zeroshot_reference and result.learner.name != "zeroshot"
    for key in ("base", "novel", "hm") if spec.base2new else ("accuracy",):
        label = {"accuracy": "accuracy", "base": "base", "novel": "novel", "hm": "harmonic mean"}[key]
        images = f" on {n[key if key != 'accuracy' else 'all']} test images" if key != "hm" else ""
        line = f"  {label:<14}{metrics[key]:6.2f} %{images}"
        if zs:
            zero = metrics["zeroshot_" + key]
            line += f"   (zero-shot {zero:.2f} %, {metrics[key] - zero:+.2f})"
        print(line)
    for note in result.notes:
        print(f"  note: {note}")
    print(f"written to {out}/: {', '.join(sorted(p.name for p in out.iterdir()))}")
    print(
        f"next: mmprompt-lab eval --checkpoint {out}    or    mmprompt-lab predict --checkpoint {out} IMAGE… "
        "(a closed set: it ranks only the tuned class names)"
    )


def cmd_eval(args) -> int:
    from .engine import load_learner, read_card
    from .experiment import ExperimentSpec, score
    from .models import parse_backbone_id
    from .io import write_json

    card = read_card(args.checkpoint)
    configure_threads(args.threads, parse_backbone_id(card["backbone"])[0], args.device)
    data = card.get("data") or {}
    dataset = args.dataset or data.get("dataset")
    if dataset is None:
        raise ValueError("this checkpoint does not say which data it was tuned on; pass --dataset")
    root = args.root or data.get("root")
    base2new = args.subsample is None and bool(data.get("base2new")) and not args.dataset
    subsample = args.subsample or "all"
    spec = ExperimentSpec(
        card["method"],
        dataset,
        shots=None,
        seed=data.get("seed", 1),
        base2new=base2new,
        root=root,
        zeroshot_reference=False,
        precision=args.precision,
        options={"templates": card["config"]["templates"]} if "templates" in card["config"] else {},
    )
    learner = load_learner(args.checkpoint, device=args.device, download=args.download or None)
    tests = _eval_sets(spec, args.split, subsample)
    tuned_subsample = "base" if data.get("base2new") else "all"
    if base2new or (dataset == data.get("dataset") and subsample == tuned_subsample):  # the tuned classes
        tuned = tests["base" if base2new else "all"]
        if list(tuned.classnames) != list(card["classnames"]):
            raise ValueError(
                f"{dataset} ({tuned_subsample} classes) now has the classes {tuned.classnames[:4]}…, but "
                f"the checkpoint was tuned on {card['classnames'][:4]}…: the data has changed (check "
                "--root), or pass --dataset/--subsample to evaluate other classes on purpose"
            )
    metrics, evals = score(learner, tests, spec, device=args.device)
    metrics |= {
        "method": card["method"],
        "dataset": dataset,
        "split": args.split,
        "n_test": {k: len(ds) for k, ds in tests.items()},
        "checkpoint": str(args.checkpoint),
        "per_class_accuracy": evals[next(iter(tests))]["per_class_accuracy"],
    }
    out = Path(args.out or Path(args.checkpoint) / "eval")
    write_json(out / "metrics.json", metrics)
    if args.json:
        print(dumps(metrics))
        return 0
    n = metrics["n_test"]
    if base2new:
        print(
            f"{card['method']} on {dataset} ({args.split}): base {metrics['base']:.2f} % ({n['base']} images), "
            f"novel {metrics['novel']:.2f} % ({n['novel']} images), harmonic mean {metrics['hm']:.2f} %"
        )
    else:
        print(
            f"{card['method']} on {dataset} ({args.split}, {subsample} classes): accuracy "
            f"{metrics['accuracy']:.2f} % on {n['all']} images"
        )
    print(f"written: {out / 'metrics.json'}")
    return 0


def _eval_sets(spec, split: str, subsample: str) -> dict:
    from .data import load_dataset

    def load(sub):
        return load_dataset(spec.dataset, split=split, root=spec.root, seed=spec.seed, subsample=sub)

    return {"base": load("base"), "novel": load("novel")} if spec.base2new else {"all": load(subsample)}


def cmd_list(args) -> int:
    from .catalog import list_tables

    print(list_tables())
    return 0


def cmd_pretrain(args) -> int:
    from .toyclip import export_weights, pretrain, write_train_log

    history = pretrain(
        args.out, steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed, threads=args.threads
    )
    if history:
        print(f"step {history[-1]['step']}: loss {history[-1]['loss']:.4f}")
    if args.export:
        weights = export_weights(Path(args.out) / "checkpoint.safetensors", args.export)
        log = write_train_log(Path(args.out), weights.with_name(weights.stem + "_train_log.json"))
        print(f"weights → {weights}, training log → {log}")
    return 0


def cmd_notebooks(args) -> int:
    from .render import render_notebooks

    paths = args.paths or sorted(Path("notebooks").glob("[0-9][0-9]_*.ipynb"))
    for path in render_notebooks(paths, args.out, ci=args.ci):
        print(f"written: {path}")
    return 0


COMMANDS = {"tune": cmd_tune, "eval": cmd_eval, "list": cmd_list, "pretrain": cmd_pretrain, "notebooks": cmd_notebooks}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = [a for a in argv if a != "--resume"]
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        if hasattr(args, "func"):
            return args.func(args)
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print(f"\nmmprompt-lab {args.command}: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError, FloatingPointError, RuntimeError, ImportError) as err:
        if args.verbose:
            raise
        print(f"mmprompt-lab {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
