"""The four evaluation protocols of docs/protocols.md §1 as functions that write one results JSON each.

    few_shot       K ∈ {1, 2, 4, 8, 16} shots of all classes → the full test split
    base2new       16 shots of the base classes → base test and novel test (HM)
    cross_dataset  16 shots of a source, all classes → each target's full test split
    domain_generalisation   the same source model → variant test sets (same or fewer class names)

A learner is trained once per (method, training selection, seed) and evaluated on every test set
the protocol needs; with `out` set, it is also saved under `out/checkpoints/`, and a later run
with identical settings (e.g. domain generalisation after cross-dataset) reloads it instead of
training again. Zero-shot CLIP (`method="zeroshot"`) is never trained and uses each test
dataset's own template.

Results file `out/<protocol>-<method>.json`:
    {"format", "protocol", "method", "config": {...}, "results": [one record per seed and test set],
     "environment": {versions, device, threads}, "started", "finished", "seconds"}
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import time
from datetime import datetime, timezone
from pathlib import Path
from collections.abc import Sequence

import torch

from ..backbone import FrozenCLIP, load_clip
from ..data.base import ImageDataset, load_dataset
from ..engine import base_novel, evaluate, load_learner, read_card, save_learner
from ..experiment import ExperimentSpec, scorer_for, train_learner
from ..io import read_json, write_json
from ..runs import FolderLock
from ..learners.base import PromptLearner

log = logging.getLogger(__name__)

RESULTS_FORMAT = "mmprompt_lab.results/1"
PROTOCOLS = ("few_shot", "base2new", "cross_dataset", "domain_generalisation")

TOY_SUITES = ("toyworld/shapes", "toyworld/patterns", "toyworld/scenes", "toyworld/polygons", "toyworld/clutter")
TOY_SHIFTS = ("toyworld/shapes-sketch", "toyworld/shapes-noise", "toyworld/shapes-rendition")
COOP_DATASETS = (
    "imagenet",
    "caltech101",
    "oxford_pets",
    "stanford_cars",
    "oxford_flowers",
    "food101",
    "fgvc_aircraft",
    "sun397",
    "dtd",
    "eurosat",
    "ucf101",
)
IMAGENET_VARIANTS = ("imagenetv2", "imagenet_sketch", "imagenet_a", "imagenet_r")


def default_datasets(protocol: str, real: bool) -> dict:
    """Default datasets of a protocol: ToyWorld suites, or (`real=True`) the CoOp suite of docs/protocols.md §2.

    Returns {"datasets": [...]} for few_shot/base2new, {"source": str, "targets": [...]} otherwise.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; one of {', '.join(PROTOCOLS)}")
    suites, shifts = (COOP_DATASETS, IMAGENET_VARIANTS) if real else (TOY_SUITES, TOY_SHIFTS)
    if protocol in ("few_shot", "base2new"):
        return {"datasets": list(suites)}
    if protocol == "cross_dataset":
        return {"source": suites[0], "targets": list(suites[1:])}
    return {"source": suites[0], "targets": list(shifts)}


def environment(clip: FrozenCLIP) -> dict:
    """Versions, device and thread count: what a results file needs to be compared with another."""
    import open_clip

    from .. import __version__

    device = clip.device
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    return {
        "mmprompt_lab": __version__,
        "torch": torch.__version__,
        "open_clip": open_clip.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(device),
        "device_name": name,
        "threads": torch.get_num_threads(),
    }


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _jsonable(obj):
    return json.loads(json.dumps(obj, default=str))


def _slug(name: str) -> str:
    return name.replace("/", "_").replace(" ", "_")


class Session:
    """One method on one backbone with fixed training settings: trains (or reloads) learners and
    evaluates them, through the experiment pipeline (`mmprompt_lab.experiment`). Used by the
    protocol functions; handy on its own in a notebook.

    Args:
        method: a learner name, or "zeroshot".
        clip: a FrozenCLIP (e.g. `load_clip("toyclip")`).
        root: folder of the real datasets (None for ToyWorld).
        epochs, lr, batch_size: None = the method's preset (`learner.preset`).
        options: learner options (`create_learner` overrides), checked by the learner's config.
        preset: a named recipe of the method (e.g. MaPLe's "transfer"); epochs, lr, batch_size and options
            given here win over it. None = the official default.
        test_per_class: keep only the first K test images of each class (quick CPU runs; None = all,
            as the protocol prescribes).
        checkpoints: folder for trained learners (reused when the settings match), or None.
    """

    def __init__(
        self,
        method: str,
        clip: FrozenCLIP,
        *,
        root: str | Path | None = None,
        epochs: int | None = None,
        lr: float | None = None,
        batch_size: int | None = None,
        options: dict | None = None,
        device: str | None = None,
        precision: str = "auto",
        test_per_class: int | None = None,
        checkpoints: str | Path | None = None,
        progress: bool = False,
        preset: str | None = None,
    ):
        # the spec every run of this session shares (validated once, here)
        self.spec = ExperimentSpec(
            method,
            root=str(root) if root else None,
            epochs=epochs,
            lr=lr,
            batch_size=batch_size,
            options=dict(options or {}),
            precision=precision,
            test_per_class=test_per_class,
            zeroshot_reference=False,
            preset=preset,
        )
        self.preset = preset
        self.method, self.clip, self.root, self.options = self.spec.method, clip, self.spec.root, self.spec.options
        self.epochs, self.lr, self.batch_size = epochs, lr, batch_size
        self.device, self.precision, self.progress = device, precision, progress
        self.test_per_class = test_per_class
        self.checkpoints = Path(checkpoints) if checkpoints is not None else None
        self.trained: dict[tuple, PromptLearner] = {}
        self.train_seconds: dict[tuple, float] = {}

    @property
    def zeroshot(self) -> bool:
        return self.method == "zeroshot"

    def config(self) -> dict:
        """The settings that define what is trained (recorded in results and checkpoint cards)."""
        return {
            "method": self.method,
            "backbone": self.clip.id,
            "epochs": self.epochs,
            "lr": self.lr,
            "batch_size": self.batch_size,
            "options": self.options,
            "precision": self.precision,
            **({"preset": self.preset} if self.preset else {}),
        }  # absent without one: older results still match

    def dataset(
        self, name: str, split: str, *, shots: int | None = None, seed: int = 1, subsample: str = "all"
    ) -> ImageDataset:
        """`load_dataset` with this session's root, and the test cap applied to test splits."""
        ds = load_dataset(name, split=split, root=self.root, shots=shots, seed=seed, subsample=subsample)
        return ds.first_per_class(self.test_per_class) if split.startswith("test") else ds

    def learner(self, dataset: str, *, shots: int, seed: int, subsample: str = "all") -> PromptLearner:
        """The learner trained on `shots` per class of `dataset` (its `subsample` classes) with `seed`:
        trained once, then reused from memory or from the checkpoint folder."""
        key = (dataset, shots if not self.zeroshot else None, seed if not self.zeroshot else None, subsample)
        if key not in self.trained:
            spec = self.spec.replace(dataset=dataset, shots=shots, seed=seed, base2new=subsample == "base")
            self.trained[key] = self._load_or_train(spec)
        return self.trained[key]

    def _load_or_train(self, spec: ExperimentSpec) -> PromptLearner:
        run = {
            **self.config(),
            "dataset": spec.dataset,
            "root": spec.root,
            "shots": spec.shots,
            "seed": spec.seed,
            "subsample": spec.subsample,
        }
        digest = hashlib.sha256(json.dumps(run, sort_keys=True, default=str).encode()).hexdigest()[:10]
        folder = None
        if self.checkpoints is not None and not self.zeroshot:
            folder = self.checkpoints / (
                f"{self.method}-{_slug(spec.dataset)}-{spec.subsample}-{spec.shots}shot-seed{spec.seed}-{digest}"
            )
            if (folder / "learner.json").exists() and read_card(folder).get("run") == _jsonable(run):
                log.info("reusing %s", folder)
                self.train_seconds[(spec.dataset, spec.shots, spec.seed, spec.subsample)] = 0.0
                return load_learner(folder, self.clip)
        learner, history, _, seconds = train_learner(spec, self.clip, device=self.device, progress=self.progress)
        self.train_seconds[(spec.dataset, spec.shots, spec.seed, spec.subsample)] = round(seconds, 2)
        if folder is not None:
            save_learner(learner, folder, extra={"run": _jsonable(run), "history": history.to_dict()})
        return learner

    def test(self, learner: PromptLearner, dataset: str, *, subsample: str = "all", split: str = "test") -> dict:
        """Top-1 accuracy (and macro accuracy, image count) of `learner` on a test selection, scored
        against the test set's class names (base → novel, source → target); a zero-shot learner uses
        each dataset's own template unless templates were given."""
        ds = self.dataset(dataset, split, subsample=subsample)
        metrics = evaluate(
            scorer_for(learner, ds, self.spec), ds, device=self.device, precision=self.precision, progress=self.progress
        )
        return {"accuracy": metrics["accuracy"], "macro_accuracy": metrics["macro_accuracy"], "n": metrics["n"]}


# ----------------------------------------------------------------------------- shared plumbing
def _clip(model: str | FrozenCLIP, pretrained, device: str | None) -> FrozenCLIP:
    return model if isinstance(model, FrozenCLIP) else load_clip(model, pretrained=pretrained, device=device)


def _check_seeds(seeds: Sequence[int]) -> list[int]:
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds is empty; the protocol uses seeds 1 2 3")
    return seeds


def _session(method, model, pretrained, root, out, kwargs) -> tuple[Session, float]:
    t0 = time.time()
    clip = _clip(model, pretrained, kwargs.get("device"))
    checkpoints = Path(out) / "checkpoints" if out is not None and kwargs.pop("save_checkpoints", True) else None
    return Session(method, clip, root=root, checkpoints=checkpoints, **kwargs), t0


def _finish(protocol: str, session: Session, config: dict, records: list[dict], out, t0: float, started: str) -> dict:
    """Assemble the results dict and write it atomically to `out/<protocol>-<method>.json`."""
    result = {
        "format": RESULTS_FORMAT,
        "protocol": protocol,
        "method": session.method,
        "config": {
            **session.config(),
            "root": str(session.root) if session.root else None,
            "test_per_class": session.test_per_class,
            **config,
        },
        "results": records,
        "environment": environment(session.clip),
        "started": started,
        "finished": _now(),
        "seconds": round(time.time() - t0, 1),
    }
    if out is not None:
        path = Path(out) / f"{protocol}-{session.method}.json"
        with FolderLock(Path(out) / ".results.lock", Path(out)):
            result["results"] = merge_records(path, result)
            write_json(path, result)
        result["path"] = str(path)
    return result


RECORD_KEY = ("dataset", "shots", "seed", "role", "source")


def merge_records(path: Path, result: dict) -> list[dict]:
    """The records of `result` merged with those already in `path` (same protocol, method and recipe):
    a new record replaces an old one with the same (dataset, shots, seed, role, source); the rest stay.
    A results file made with another recipe is refused rather than mixed."""
    if not path.exists():
        return result["results"]
    old = read_json(path, "results file")
    recipe = ("protocol", "method")
    same = (
        isinstance(old, dict)
        and all(old.get(k) == result[k] for k in recipe)
        and {k: v for k, v in old.get("config", {}).items() if k in RECIPE_KEYS}
        == {k: v for k, v in _jsonable(result["config"]).items() if k in RECIPE_KEYS}
    )
    if not same:
        raise ValueError(
            f"{path} holds results made with other settings (backbone, epochs, lr, batch size, "
            "options, preset, precision or test cap differ); use another --out folder to keep both"
        )

    def key(record):
        return tuple(record.get(k) for k in RECORD_KEY)

    new = {key(r) for r in result["results"]}
    return [r for r in old.get("results", []) if key(r) not in new] + result["results"]


RECIPE_KEYS = ("backbone", "epochs", "lr", "batch_size", "options", "precision", "root", "test_per_class", "preset")


def _train_record(session: Session, dataset: str, shots: int, seed: int, subsample: str, learner) -> dict:
    return {
        "train_seconds": session.train_seconds.get((dataset, shots, seed, subsample), 0.0),
        "trainable_parameters": learner.num_trainable(),
    }


# ----------------------------------------------------------------------------- the protocols
def few_shot(
    method: str,
    datasets: Sequence[str] | None = None,
    shots: Sequence[int] = (1, 2, 4, 8, 16),
    seeds: Sequence[int] = (1, 2, 3),
    *,
    model: str | FrozenCLIP = "toyclip",
    pretrained=None,
    root: str | Path | None = None,
    out: str | Path | None = "runs/protocols",
    **kwargs,
) -> dict:
    """Few-shot: train on K shots of all classes, test on the full test split, for each K and seed.

    Args:
        method: a learner name (`list_learners()`); "zeroshot" is evaluated once (recorded as shots 0).
        datasets: None = the ToyWorld suites, or the 11 CoOp datasets when `root` is given.
        shots, seeds: the grid; docs/protocols.md §1 uses (1, 2, 4, 8, 16) and (1, 2, 3).
        model, pretrained: `load_clip` arguments, or a FrozenCLIP as `model`.
        root: folder of the real datasets.
        out: folder for the results JSON and checkpoints (None = write nothing).
        **kwargs: `Session` options: epochs, lr, batch_size, options, preset, device, precision,
            test_per_class, progress, save_checkpoints.
    Returns:
        The results dict (also written to `out/few_shot-<method>.json`); records hold
        dataset, shots, seed, accuracy.

    Example:
        >>> res = few_shot("coop", ["toyworld/patterns"], shots=(1, 2), seeds=(1,), epochs=2)
    """
    started = _now()
    session, t0 = _session(method, model, pretrained, root, out, kwargs)
    datasets = list(datasets or default_datasets("few_shot", root is not None)["datasets"])
    seeds, shots = _check_seeds(seeds), [int(k) for k in shots]
    records = []
    for name in datasets:
        for seed in seeds:
            for k in [0] if session.zeroshot else shots:  # zero-shot CLIP is recorded as 0 shots
                trained_on = 1 if session.zeroshot else k  # zero-shot reads one shot, for the class names
                learner = session.learner(name, shots=trained_on, seed=seed)
                metrics = session.test(learner, name)
                records.append(
                    {
                        "dataset": name,
                        "shots": k,
                        "seed": seed,
                        **metrics,
                        **_train_record(session, name, trained_on, seed, "all", learner),
                    }
                )
    return _finish(
        "few_shot", session, {"datasets": datasets, "shots": shots, "seeds": seeds}, records, out, t0, started
    )


def base2new(
    method: str,
    datasets: Sequence[str] | None = None,
    seeds: Sequence[int] = (1, 2, 3),
    *,
    shots: int = 16,
    model: str | FrozenCLIP = "toyclip",
    pretrained=None,
    root: str | Path | None = None,
    out: str | Path | None = "runs/protocols",
    **kwargs,
) -> dict:
    """Base-to-novel: train on `shots` of the base classes; test on base and on novel classes.

    Args:
        method, model, pretrained, root, out, **kwargs: as in `few_shot`.
        datasets: None = the ToyWorld suites without the shift sets, or the 11 CoOp datasets with `root`.
    Returns:
        The results dict (written to `out/base2new-<method>.json`); records hold dataset, seed,
        base, novel, hm (%) and the image counts.

    Example:
        >>> res = base2new("maple", ["toyworld/shapes"], seeds=(1,), epochs=1)
        >>> res["results"][0]["hm"]
    """
    started = _now()
    session, t0 = _session(method, model, pretrained, root, out, kwargs)
    datasets = list(datasets or default_datasets("base2new", root is not None)["datasets"])
    seeds = _check_seeds(seeds)
    records = []
    for name in datasets:
        for seed in seeds:
            learner = session.learner(name, shots=shots, seed=seed, subsample="base")
            base = session.test(learner, name, subsample="base")
            novel = session.test(learner, name, subsample="novel")
            records.append(
                {
                    "dataset": name,
                    "seed": seed,
                    **base_novel(base, novel),
                    "n_base": base["n"],
                    "n_novel": novel["n"],
                    **_train_record(session, name, shots, seed, "base", learner),
                }
            )
    return _finish(
        "base2new", session, {"datasets": datasets, "shots": shots, "seeds": seeds}, records, out, t0, started
    )


def _transfer(
    protocol: str,
    method: str,
    source: str | None,
    targets: Sequence[str] | None,
    seeds,
    shots,
    model,
    pretrained,
    root,
    out,
    kwargs,
) -> dict:
    started = _now()
    session, t0 = _session(method, model, pretrained, root, out, kwargs)
    defaults = default_datasets(protocol, root is not None)
    source = source or defaults["source"]
    targets = list(targets or defaults["targets"])
    seeds = _check_seeds(seeds)
    records = []
    for seed in seeds:
        learner = session.learner(source, shots=shots, seed=seed)
        extra = _train_record(session, source, shots, seed, "all", learner)
        for name in [source, *targets]:
            role = "source" if name == source else "target"
            records.append(
                {"dataset": name, "role": role, "source": source, "seed": seed, **session.test(learner, name), **extra}
            )
    return _finish(
        protocol,
        session,
        {"source": source, "targets": targets, "shots": shots, "seeds": seeds},
        records,
        out,
        t0,
        started,
    )


def cross_dataset(
    method: str,
    source: str | None = None,
    targets: Sequence[str] | None = None,
    seeds: Sequence[int] = (1, 2, 3),
    *,
    shots: int = 16,
    model: str | FrozenCLIP = "toyclip",
    pretrained=None,
    root: str | Path | None = None,
    out: str | Path | None = "runs/protocols",
    **kwargs,
) -> dict:
    """Cross-dataset transfer: train on `shots` of all source classes, test on each target's test split
    (the learner's class names become the target's).

    Args:
        source, targets: None = toyworld/shapes → the other ToyWorld suites (or ImageNet → the other
            10 CoOp datasets with `root`).
        method, seeds, model, pretrained, root, out, **kwargs: as in `few_shot`.
    Returns:
        The results dict (written to `out/cross_dataset-<method>.json`); one record per seed and test
        set (the source's own test split included, role "source").

    Example:
        >>> res = cross_dataset("coop", "toyworld/shapes", ["toyworld/clutter"], seeds=(1,), epochs=1)
    """
    return _transfer("cross_dataset", method, source, targets, seeds, shots, model, pretrained, root, out, kwargs)


def domain_generalisation(
    method: str,
    source: str | None = None,
    targets: Sequence[str] | None = None,
    seeds: Sequence[int] = (1, 2, 3),
    *,
    shots: int = 16,
    model: str | FrozenCLIP = "toyclip",
    pretrained=None,
    root: str | Path | None = None,
    out: str | Path | None = "runs/protocols",
    **kwargs,
) -> dict:
    """Domain generalisation: train on the source, test on variant test sets of the same classes. A
    target with fewer classes (ImageNet-A/-R: 200) restricts the learner to the target's class names.

    Args:
        source, targets: None = toyworld/shapes → shapes-sketch/-noise/-rendition (or ImageNet →
            ImageNetV2/-Sketch/-A/-R with `root`).
        method, seeds, model, pretrained, root, out, **kwargs: as in `few_shot`.
    Returns:
        The results dict (written to `out/domain_generalisation-<method>.json`).

    Example:
        >>> res = domain_generalisation("maple", seeds=(1,), preset="transfer")   # MaPLe's DG recipe
    """
    return _transfer(
        "domain_generalisation", method, source, targets, seeds, shots, model, pretrained, root, out, kwargs
    )


def run_protocol(protocol: str, method: str, **kwargs) -> dict:
    """Dispatch by protocol name ("few_shot", "base2new", "cross_dataset", "domain_generalisation";
    dashes allowed)."""
    key = protocol.replace("-", "_")
    functions = {
        "few_shot": few_shot,
        "base2new": base2new,
        "cross_dataset": cross_dataset,
        "domain_generalisation": domain_generalisation,
    }
    if key not in functions:
        raise ValueError(f"unknown protocol {protocol!r}; one of {', '.join(PROTOCOLS)}")
    return functions[key](method, **kwargs)


__all__ = [
    "COOP_DATASETS",
    "IMAGENET_VARIANTS",
    "PROTOCOLS",
    "RESULTS_FORMAT",
    "Session",
    "TOY_SHIFTS",
    "TOY_SUITES",
    "base2new",
    "cross_dataset",
    "default_datasets",
    "domain_generalisation",
    "environment",
    "few_shot",
    "run_protocol",
]
