"""Aggregate results JSONs into paper-style tables (markdown) and plotly figures.

    results = load_results("runs/protocols")          # every results JSON in the folder
    print(markdown_report(results))                   # mean ± std over seeds, beside published numbers
    write_report("runs/protocols")                    # report/results.md + report/<protocol>.html/.json

Conventions (docs/protocols.md §1, and the official `parse_test_res.py`): a cell is the mean over seeds
± the population standard deviation (numpy's default, ddof = 0). An HM cell is the harmonic mean
of the mean base and mean novel accuracy (no ±), and an average row's HM is the HM of the averaged
base and novel accuracies. An average row's ± is the std over seeds of the per-seed averages.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from collections.abc import Iterable, Sequence

from ..engine import harmonic_mean
from .published import dataset_name, is_published_setting, load_published, method_name, published_value
from .runner import PROTOCOLS, RESULTS_FORMAT

log = logging.getLogger(__name__)

TITLES = {
    "few_shot": "Few-shot",
    "base2new": "Base-to-novel",
    "cross_dataset": "Cross-dataset transfer",
    "domain_generalisation": "Domain generalisation",
}
DASH = "–"


# ----------------------------------------------------------------------------- reading
def load_results(paths: str | Path | Iterable[str | Path]) -> list[dict]:
    """Read results JSONs: files, or folders (their `*.json` files that are results files).

    Args:
        paths: one path or several; a folder contributes its top-level results JSONs (other JSON
            files there are skipped), a file must be a results JSON.
    Returns:
        The results dicts, oldest first (by "finished").

    Example:
        >>> results = load_results("runs/protocols")
    """
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    found = []
    for path in map(Path, paths):
        path = path.expanduser()
        if path.is_dir():
            for file in sorted(path.glob("*.json")):
                data = _read_json(file)
                if isinstance(data, dict) and data.get("format") == RESULTS_FORMAT:
                    found.append(data)
                else:
                    log.info("skipping %s: not a results file", file)
        elif path.is_file():
            data = _read_json(path)
            if not isinstance(data, dict) or data.get("format") != RESULTS_FORMAT:
                raise ValueError(
                    f'{path} is not a results file (expected "format": {RESULTS_FORMAT!r}, '
                    "as written by the protocol runners)"
                )
            found.append(data)
        else:
            raise FileNotFoundError(f"no results file or folder at {path}")
    for data in found:
        if data.get("protocol") not in PROTOCOLS or not isinstance(data.get("results"), list):
            raise ValueError(
                f"results file for {data.get('method')!r} has protocol {data.get('protocol')!r} "
                f"(allowed: {', '.join(PROTOCOLS)}) or no 'results' list"
            )
    return sorted(found, key=lambda d: d.get("finished", ""))


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err


# ----------------------------------------------------------------------------- arithmetic
def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and population std (ddof = 0, as the official `parse_test_res.py`) of a non-empty list."""
    if not values:
        raise ValueError("mean_std needs at least one value")
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


def _group_key(result: dict) -> tuple[str, str]:
    return result["protocol"], result["config"].get("backbone", "?")


def _method_order(method: str) -> int:
    from ..learners import list_learners

    names = list_learners()
    return names.index(method) if method in names else len(names)


def collect(results: list[dict]) -> dict:
    """Records by (protocol, backbone) → method → {(dataset, shots): {seed: record}}; a later file
    replaces an earlier one's record for the same method, dataset, shots and seed."""
    out: dict = {}
    for result in sorted(results, key=lambda r: _method_order(r["method"])):
        per_method = out.setdefault(_group_key(result), {}).setdefault(result["method"], {})
        for rec in result["results"]:
            per_method.setdefault((rec["dataset"], rec.get("shots")), {})[rec["seed"]] = {
                **rec,
                "source": rec.get("source", result["config"].get("source")),
            }
    return out


def summarise(records_by_seed: dict[int, dict], metrics: Sequence[str]) -> dict:
    """{metric: (mean, std)} over seeds, plus "seeds"; with base and novel, "hm" = HM of the means."""
    recs = [records_by_seed[s] for s in sorted(records_by_seed)]
    row = {m: mean_std([r[m] for r in recs]) for m in metrics}
    if "base" in row and "novel" in row:
        row["hm"] = (harmonic_mean(row["base"][0], row["novel"][0]), None)
    row["seeds"] = sorted(records_by_seed)
    return row


def average(per_dataset: dict[str, dict[int, dict]], metrics: Sequence[str]) -> dict:
    """Average over datasets: the mean of the per-dataset means; ± = std over the seeds that every
    dataset has of the per-seed averages; with base and novel, "hm" = HM of the averaged base and novel.

    Example:
        >>> average({"a": {1: {"base": 80, "novel": 70}}, "b": {1: {"base": 90, "novel": 60}}},
        ...         ["base", "novel"])["hm"]   # HM(85, 65) = 73.67
    """
    if not per_dataset:
        raise ValueError("average needs at least one dataset")
    row = {}
    common = sorted(set.intersection(*(set(seeds) for seeds in per_dataset.values())))
    for m in metrics:
        means = [mean_std([r[m] for r in seeds.values()])[0] for seeds in per_dataset.values()]
        per_seed = [sum(seeds[s][m] for seeds in per_dataset.values()) / len(per_dataset) for s in common]
        row[m] = (sum(means) / len(means), mean_std(per_seed)[1] if per_seed else None)
    if "base" in row and "novel" in row:
        row["hm"] = (harmonic_mean(row["base"][0], row["novel"][0]), None)
    row["seeds"], row["datasets"] = common, list(per_dataset)
    return row


# ----------------------------------------------------------------------------- tables
def fmt(cell) -> str:
    """(mean, std) → "82.28 ± 0.41"; (mean, None) → "82.28"; None → "–"."""
    if cell is None:
        return DASH
    if isinstance(cell, (int, float)):
        return f"{cell:.2f}"
    mean, std = cell
    return f"{mean:.2f}" if std is None else f"{mean:.2f} ± {std:.2f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def _toy_note(datasets: Iterable[str]) -> str | None:
    toy = sorted({d for d in datasets if d.startswith("toyworld/") or dataset_name(d) == d})
    if not toy:
        return None
    return (
        f"No published numbers exist for {', '.join(toy)} (ToyWorld or own datasets; shown as n/a). "
        "Published numbers are for ViT-B/16 on the real datasets (docs/protocols.md §3)."
    )


def _published_reference(protocol: str) -> str:
    """The published averages of a protocol as their own table (always shown for reference)."""
    pub = load_published().get(protocol, {})
    if not pub.get("average"):
        return "docs/protocols.md lists no published numbers for this protocol."
    if protocol == "base2new":
        rows = [[method_name(m), fmt(v["base"]), fmt(v["novel"]), fmt(v["hm"])] for m, v in pub["average"].items()]
        table = _table(["method (published)", "Base", "Novel", "HM"], rows)
        where = f"average over {len(pub['datasets'])} datasets"
    else:
        rows = [[method_name(m), fmt(v)] for m, v in pub["average"].items()]
        table = _table(["method (published)", "Average"], rows)
        where = f"{dataset_name(pub['source'])} → {len(pub['targets'])} targets, average"
    return f"Published ({load_published()['backbone']}, {where}):\n\n{table}"


def base2new_tables(methods: dict) -> str:
    """Markdown: one table per dataset and the average, methods as rows (Base, Novel, HM and the
    published Base, Novel, HM beside them)."""
    datasets = list(dict.fromkeys(d for per in methods.values() for d, _ in per))
    metrics = ["base", "novel"]
    header = ["method", "Base", "Novel", "HM", "seeds", "pub. Base", "pub. Novel", "pub. HM"]
    parts = []
    for d in datasets:
        rows = []
        for m, per in methods.items():
            if (d, None) not in per:
                continue
            row = summarise(per[(d, None)], metrics)
            pub = published_value("base2new", m, d) or {}
            na = DASH if dataset_name(d) != d else "n/a"
            rows.append(
                [
                    method_name(m),
                    fmt(row["base"]),
                    fmt(row["novel"]),
                    fmt(row["hm"]),
                    str(len(row["seeds"])),
                    fmt(pub.get("base")) if pub else na,
                    fmt(pub.get("novel")) if pub else na,
                    fmt(pub.get("hm")) if pub else na,
                ]
            )
        parts.append(f"#### {dataset_name(d)}\n\n" + _table(header, rows))
    rows = []
    for m, per in methods.items():
        per_dataset = {d: seeds for (d, _), seeds in per.items()}
        row = average(per_dataset, metrics)
        pub = published_value("base2new", m) if is_published_setting("base2new", row["datasets"]) else None
        na = "n/a" if _toy_note(row["datasets"]) else DASH
        nd = len(row["datasets"])
        rows.append(
            [
                f"{method_name(m)} ({nd} dataset{'s' * (nd > 1)})",
                fmt(row["base"]),
                fmt(row["novel"]),
                fmt(row["hm"]),
                str(len(row["seeds"])),
                *(fmt(pub[k]) if pub else na for k in ("base", "novel", "hm")),
            ]
        )
    parts.insert(0, "#### Average (HM of the averaged base and novel)\n\n" + _table(header, rows))
    return "\n\n".join(parts)


def few_shot_tables(methods: dict) -> str:
    """Markdown: per dataset and the average, methods as rows and K shots as columns (zero-shot = 0)."""
    datasets = list(dict.fromkeys(d for per in methods.values() for d, _ in per))
    shots = sorted({k for per in methods.values() for _, k in per})
    header = ["method", *[("0 (zero-shot)" if k == 0 else f"{k} shot{'s' * (k > 1)}") for k in shots]]
    parts = []
    for d in [*datasets, None]:
        rows = []
        for m, per in methods.items():
            cells = []
            for k in shots:
                if d is None:
                    per_dataset = {dd: seeds for (dd, kk), seeds in per.items() if kk == k}
                    cells.append(fmt(average(per_dataset, ["accuracy"])["accuracy"]) if per_dataset else DASH)
                else:
                    cells.append(fmt(summarise(per[(d, k)], ["accuracy"])["accuracy"]) if (d, k) in per else DASH)
            rows.append([method_name(m), *cells])
        title = f"Average over {len(datasets)} dataset{'s' * (len(datasets) > 1)}" if d is None else dataset_name(d)
        parts.append(f"#### {title}\n\n" + _table(header, rows))
    return "\n\n".join(parts[-1:] + parts[:-1])


def transfer_table(protocol: str, methods: dict) -> str:
    """Markdown: methods as rows; the source, each target and the target average as columns, with
    published rows (per dataset where listed, else the average) when the setting is the published one."""
    sources, datasets = set(), []
    for per in methods.values():
        for (d, _), seeds in per.items():
            rec = next(iter(seeds.values()))
            sources.add(rec["source"])
            datasets.append(d)
    datasets = list(dict.fromkeys(datasets))
    source = sorted(sources)[0] if len(sources) == 1 else None
    targets = [d for d in datasets if d != source]
    header = ["method", *[f"{dataset_name(d)}{' (source)' if d == source else ''}" for d in datasets], "Average"]
    rows = []
    for m, per in methods.items():
        cells = [
            fmt(summarise(per[(d, None)], ["accuracy"])["accuracy"]) if (d, None) in per else DASH for d in datasets
        ]
        per_target = {d: per[(d, None)] for d in targets if (d, None) in per}
        avg = average(per_target, ["accuracy"])["accuracy"] if per_target else None
        rows.append([method_name(m), *cells, fmt(avg)])
    if is_published_setting(protocol, targets, source):
        for m, avg in load_published()[protocol]["average"].items():
            rows.append(
                [f"{method_name(m)} (published)", *[fmt(published_value(protocol, m, d)) for d in datasets], fmt(avg)]
            )
    note = "" if len(sources) == 1 else f"\n\nSeveral sources in one table: {', '.join(sorted(sources))}."
    return _table(header, rows) + note


def markdown_report(results: list[dict]) -> str:
    """All protocols in `results` as markdown: one section per (protocol, backbone), with the
    published numbers beside ours where they exist and a note where they do not (ToyWorld).

    Example:
        >>> print(markdown_report(load_results("runs/protocols")))
    """
    if not results:
        return "No results."
    parts = []
    for (protocol, backbone), methods in collect(results).items():
        seeds = sorted({s for per in methods.values() for seeds in per.values() for s in seeds})
        datasets = sorted({d for per in methods.values() for d, _ in per})
        parts.append(f"### {TITLES[protocol]} — {backbone}, seeds {', '.join(map(str, seeds))}")
        parts.append("Mean ± std (population) over seeds, top-1 accuracy (%).")
        body = {"base2new": base2new_tables, "few_shot": few_shot_tables}.get(protocol)
        parts.append(body(methods) if body else transfer_table(protocol, methods))
        note = _toy_note(datasets)
        if note:
            parts.append(note)
        if note or protocol == "few_shot":
            parts.append(_published_reference(protocol))
    return "\n\n".join(parts) + "\n"


# ----------------------------------------------------------------------------- figures
def figures(results: list[dict]) -> dict:
    """One plotly figure per (protocol, backbone): grouped bars per dataset with ± std error bars
    (base2new: Base / Novel / HM panels; few-shot: accuracy against shots), published values as
    black markers where they exist. Returns {"<protocol>" or "<protocol>-<backbone>": Figure}.
    """
    try:
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots
    except ImportError as err:
        raise ImportError("figures need plotly: pip install plotly (or mmprompt_lab[notebooks])") from err
    groups = collect(results)
    out = {}
    for (protocol, backbone), methods in groups.items():
        key = protocol if sum(p == protocol for p, _ in groups) == 1 else f"{protocol}-{backbone.replace(':', '_')}"
        title = f"{TITLES[protocol]} — {backbone}"
        if protocol == "base2new":
            fig = make_subplots(rows=1, cols=3, subplot_titles=("Base", "Novel", "HM"), shared_yaxes=True)
            for n, m in enumerate(methods):
                per = {d: seeds for (d, _), seeds in methods[m].items()}
                rows = {dataset_name(d): summarise(s, ["base", "novel"]) for d, s in per.items()}
                rows["Average"] = average(per, ["base", "novel"])
                for col, metric in enumerate(("base", "novel", "hm"), start=1):
                    x = list(rows)
                    y = [r[metric][0] for r in rows.values()]
                    err = [r[metric][1] or 0 for r in rows.values()]
                    fig.add_trace(
                        go.Bar(
                            name=method_name(m),
                            x=x,
                            y=y,
                            error_y=dict(type="data", array=err),
                            legendgroup=m,
                            showlegend=col == 1,
                            marker_color=_colour(n),
                        ),
                        1,
                        col,
                    )
                    pub = [(published_value("base2new", m, d) or {}).get(metric) for d in per]
                    if any(v is not None for v in pub):
                        fig.add_trace(
                            go.Scatter(
                                name=f"{method_name(m)} (published)",
                                x=x[:-1],
                                y=pub,
                                mode="markers",
                                marker=dict(symbol="x", color="black"),
                                legendgroup=f"{m}-pub",
                                showlegend=col == 1,
                            ),
                            1,
                            col,
                        )
            fig.update_layout(barmode="group", title=title, yaxis_title="accuracy (%)")
        elif protocol == "few_shot":
            datasets = list(dict.fromkeys(d for per in methods.values() for d, _ in per))
            fig = make_subplots(rows=1, cols=len(datasets), subplot_titles=[dataset_name(d) for d in datasets])
            for n, m in enumerate(methods):
                for col, d in enumerate(datasets, start=1):
                    ks = sorted(k for dd, k in methods[m] if dd == d)
                    rows = [summarise(methods[m][(d, k)], ["accuracy"])["accuracy"] for k in ks]
                    fig.add_trace(
                        go.Scatter(
                            name=method_name(m),
                            x=[str(k) for k in ks],
                            y=[r[0] for r in rows],
                            mode="lines+markers",
                            error_y=dict(type="data", array=[r[1] for r in rows]),
                            legendgroup=m,
                            showlegend=col == 1,
                            line=dict(color=_colour(n)),
                        ),
                        1,
                        col,
                    )
            fig.update_layout(title=title, yaxis_title="accuracy (%)")
            fig.update_xaxes(title_text="shots per class (0 = zero-shot)", type="category")
        else:
            fig = go.Figure()
            for n, m in enumerate(methods):
                per = {d: seeds for (d, _), seeds in methods[m].items()}
                x = [dataset_name(d) for d in per]
                rows = [summarise(s, ["accuracy"])["accuracy"] for s in per.values()]
                fig.add_trace(
                    go.Bar(
                        name=method_name(m),
                        x=x,
                        y=[r[0] for r in rows],
                        marker_color=_colour(n),
                        error_y=dict(type="data", array=[r[1] for r in rows]),
                    )
                )
                pub = [published_value(protocol, m, d) for d in per]
                if any(v is not None for v in pub):
                    fig.add_trace(
                        go.Scatter(
                            name=f"{method_name(m)} (published)",
                            x=x,
                            y=pub,
                            mode="markers",
                            marker=dict(symbol="x", color="black"),
                        )
                    )
            fig.update_layout(barmode="group", title=title, yaxis_title="accuracy (%)")
        out[key] = fig
    return out


def _colour(n: int) -> str:
    palette = (
        "#4C78A8",
        "#F58518",
        "#54A24B",
        "#E45756",
        "#72B7B2",
        "#B279A2",
        "#FF9DA6",
        "#9D755D",
        "#BAB0AC",
        "#EECA3B",
    )
    return palette[n % len(palette)]


def write_report(paths: str | Path | Iterable[str | Path], out: str | Path | None = None, figure: bool = True) -> dict:
    """Aggregate results into `out` (default: `<first folder>/report`): `results.md`, and per
    protocol `<protocol>.html` (interactive, plotly.js from a CDN) and `<protocol>.json` (the figure).

    Returns:
        {"markdown": text, "files": [written paths]}.

    Example:
        >>> report = write_report("runs/protocols")
        >>> print(report["markdown"])
    """
    results = load_results(paths)
    first = Path(paths if isinstance(paths, (str, Path)) else next(iter(paths))).expanduser()
    out = Path(out) if out is not None else (first if first.is_dir() else first.parent) / "report"
    out.mkdir(parents=True, exist_ok=True)
    text = markdown_report(results)
    files = [out / "results.md"]
    files[0].write_text(text)
    if figure and results:
        for key, fig in figures(results).items():
            fig.write_html(out / f"{key}.html", include_plotlyjs="cdn")
            (out / f"{key}.json").write_text(fig.to_json())
            files += [out / f"{key}.html", out / f"{key}.json"]
    return {"markdown": text, "files": [str(f) for f in files]}
