"""`mmprompt-lab data verify --root DIR [--dataset NAME]` and `mmprompt-lab data list`.

The top-level CLI calls `add_parser(subparsers)`; the parsed args carry `func=run`.
Standalone: `python -m mmprompt_lab.data.cli verify --root ~/data`.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from .manifest import list_manifests, load_manifest
from .verify import format_report, verify


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the `data` command (with `verify` and `list`) to an argparse sub-parsers object."""
    parser = subparsers.add_parser(
        "data",
        help="check and list real datasets",
        description="Check a data folder against the manifests, or list them.",
    )
    _add_commands(parser)
    return parser


def _add_commands(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", required=True)
    v = sub.add_parser("verify", help="check a data folder: what is missing or wrong, where to get it")
    v.add_argument("--root", required=True, help="the data folder (holding dtd/, imagenet/, …)")
    v.add_argument("--dataset", default=None, help=f"one of: {', '.join(list_manifests())}")
    v.add_argument("--decode", type=int, default=8, help="images per dataset to decode as a spot check")
    v.add_argument("--json", action="store_true", help="print the report as JSON")
    sub.add_parser("list", help="the datasets, their folders under the root, class counts and templates")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run `data verify` or `data list`; returns the exit code (0 = OK)."""
    if args.data_command == "list":
        rows = [load_manifest(n) for n in list_manifests()]
        print(f"{'name':<16} {'folder under --root':<22} {'classes':>7}  {'split file':<38} template")
        for m in rows:
            print(f"{m.name:<16} {m.folder + '/':<22} {m.num_classes:>7}  {m.split_file:<38} {m.template}")
        print("also: folder (root/<class>/*.jpg) and csv (path,label or path,classname)")
        return 0
    try:
        report = verify(args.root, args.dataset, decode=args.decode)
    except Exception as err:  # a report, never a stack trace
        print(f"data verify: {args.root}\n  ✗ {type(err).__name__}: {err}\nresult: problems found")
        return 1
    if args.json:
        print(
            json.dumps(
                {"root": report.root, "ok": report.ok, "datasets": [{**asdict(c), "ok": c.ok} for c in report.checks]},
                indent=2,
            )
        )
    else:
        print(format_report(report))
    return 0 if report.ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mmprompt-lab data")
    _add_commands(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
