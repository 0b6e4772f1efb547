"""One experiment pipeline: a spec → seed → build → fit → evaluate → a result.

The CLI (`mmprompt-lab tune`), the protocol runner, the live tuner and the notebook helpers all run
experiments through `run_experiment` (or its two halves, `train_learner` and `score`); they differ
only in how they present the result.

    spec = ExperimentSpec("maple", "toyworld/polygons", shots=16, seed=1, base2new=True)
    result = run_experiment(spec, clip)
    result.metrics     # {"accuracy", "base", "novel", "hm", "zeroshot_base", …} (%)

Rules written once, here:
- a seed fixes everything: prompt initialisation (`create_learner(seed=)`), the few-shot selection,
  shuffling and augmentation (`fit(seed=)`);
- a named preset (`spec.preset`, e.g. MaPLe's "transfer") supplies the learner options and epochs / lr /
  batch size that the spec leaves unset (`preset_options`, `fit_settings`);
- hand-template learners (zero-shot CLIP) use the template of the dataset they are scored on, unless
  templates were given as options;
- the harmonic mean comes from `engine.base_novel`; the test cap from `ImageDataset.first_per_class`.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from collections.abc import Callable

from .backbone import FrozenCLIP
from .data.base import ImageDataset, load_dataset
from .engine import History, base_novel, evaluate, fit
from .engine.train import check_recipe
from .learners import create_learner, get_learner_class
from .learners.base import PromptLearner
from .seeding import seed_everything

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExperimentSpec:
    """What defines an experiment; `to_dict()` is recorded with every result and checkpoint."""

    method: str  # a learner name (`list_learners()`)
    dataset: str = "toyworld/polygons"  # a name from `list_datasets()`
    shots: int | None = 16  # training images per class; None = all
    seed: int = 1  # fixes prompt init, few-shot selection, shuffling, augmentation
    base2new: bool = False  # train on the base classes; score base, novel and their harmonic mean
    epochs: int | None = None  # None = the method's official preset
    lr: float | None = None
    batch_size: int | None = None
    accumulate: int = 1  # gradient accumulation steps
    options: dict = field(default_factory=dict)  # learner options (`create_learner` overrides)
    test_per_class: int | None = None  # score on the first K test images per class; None = all
    root: str | None = None  # folder of a real dataset (None for ToyWorld)
    shifted: tuple[str, ...] = ()  # extra test suites with the same classes (domain shift)
    zeroshot_reference: bool = True  # also score zero-shot CLIP on the same test sets
    precision: str = "auto"  # "auto" | "fp32" | "bf16" | "fp16"
    preset: str | None = None  # a named recipe of the method (e.g. MaPLe's "transfer"); None = the official
    # default. Its options and epochs/lr/batch size apply where this spec leaves them unset (None / absent)

    def __post_init__(self):
        object.__setattr__(self, "method", get_learner_class(self.method).name)  # validates, "VPT" → "vpt"
        if self.shots is not None and (not isinstance(self.shots, int) or self.shots < 1):
            raise ValueError(
                f"shots must be an integer ≥ 1, or None for all images; got {self.shots!r} "
                "(zero-shot CLIP is the method 'zeroshot', not 0 shots)"
            )
        check_recipe(self.epochs, self.batch_size, self.lr, self.accumulate)  # None = the preset
        if self.preset is not None:
            get_learner_class(self.method).named_preset(self.preset)  # an unknown name lists the method's presets
        if self.test_per_class is not None and self.test_per_class < 1:
            raise ValueError(f"test_per_class must be ≥ 1 or None (all test images), got {self.test_per_class}")
        if self.root is not None:
            object.__setattr__(self, "root", str(Path(self.root).expanduser().resolve()))
        object.__setattr__(self, "options", dict(self.options))
        object.__setattr__(self, "shifted", tuple(self.shifted))

    @property
    def subsample(self) -> str:
        return "base" if self.base2new else "all"

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["shifted"] = list(self.shifted)
        return d

    def replace(self, **changes: Any) -> ExperimentSpec:
        return dataclasses.replace(self, **changes)


@dataclass
class ExperimentResult:
    """A finished experiment: the trained learner, its history and its metrics (%).

    `metrics` holds "accuracy" (all classes; the base accuracy under base-to-novel), "base",
    "novel", "hm" under base-to-novel, one accuracy per shifted suite (keyed by its short name),
    and the same keys prefixed "zeroshot_" for the zero-shot reference.
    """

    spec: ExperimentSpec
    learner: PromptLearner
    history: History | None  # None for learners without trainable parameters
    metrics: dict
    train: ImageDataset
    tests: dict[str, ImageDataset]  # "all" | "base", "novel", and the shifted suites
    evaluations: dict[str, dict]  # the full `evaluate` output per test set
    train_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)  # things the user should know about this run
    label: str = ""  # how presenters name the run (default: the method)

    @property
    def method(self) -> str:
        return self.label or self.spec.method

    @property
    def suite(self) -> str:
        return self.spec.dataset

    @property
    def test(self) -> ImageDataset:
        """The in-domain test set (the base classes under base-to-novel)."""
        return self.tests["base" if self.spec.base2new else "all"]

    def row(self) -> dict:
        return {
            "method": self.method,
            "suite": self.suite,
            **{k: round(v, 2) for k, v in self.metrics.items() if not k.startswith("zeroshot_")},
        }


# ----------------------------------------------------------------------------- the pieces
def hand_template_options(method: str, dataset: ImageDataset) -> dict:
    """The one template rule: a learner with hand-written templates uses the dataset's own template."""
    names = {f.name for f in dataclasses.fields(get_learner_class(method).config_class)}
    if "templates" in names:
        return {"templates": (dataset.template,)}
    return {"template": dataset.template} if "template" in names else {}


def knob_options(method: str, clip: FrozenCLIP, n_ctx: int | None = None, depth: int | None = None) -> dict:
    """Map the generic knobs "context length" and "depth" (the tuner's sliders, the lessons'
    parameters) onto a method's own config fields.

    n_ctx → every field among `n_ctx`, `n_ctx_text`, `n_ctx_vision`; depth → each of the method's depth
    fields (`depth_fields`), capped at what the model allows (`depth_limit`). Methods without such
    fields ignore the knob.

    Example:
        >>> create_learner("maple", clip, names, **knob_options("maple", clip, n_ctx=2, depth=12))
    """
    cls = get_learner_class(method)
    fields = {f.name for f in dataclasses.fields(cls.config_class)}
    out: dict = {}
    if n_ctx is not None:
        out |= {name: n_ctx for name in ("n_ctx", "n_ctx_text", "n_ctx_vision") if name in fields}
    if depth is not None:
        out |= {name: min(depth, cls.depth_limit(name, clip)) for name in cls.depth_fields}
    return out


def learner_options(spec: ExperimentSpec, dataset: ImageDataset) -> dict:
    """The spec's learner options on top of the dataset's template (explicit options win)."""
    return {**hand_template_options(spec.method, dataset), **spec.options}


def preset_options(spec: ExperimentSpec, clip: FrozenCLIP) -> dict:
    """The learner options of the spec's named preset on `clip` (depths scaled to the model); {} without one."""
    return get_learner_class(spec.method).preset_options(spec.preset, clip) if spec.preset else {}


def fit_settings(spec: ExperimentSpec) -> dict:
    """{"epochs", "lr", "batch_size"} for `fit`: the spec's own values, else its named preset's, else None
    (= the method's official preset, `learner.preset`)."""
    train = get_learner_class(spec.method).named_preset(spec.preset).train if spec.preset else None
    return {
        key: getattr(spec, key) if getattr(spec, key) is not None else getattr(train, key, None)
        for key in ("epochs", "lr", "batch_size")
    }


def load_train(spec: ExperimentSpec) -> ImageDataset:
    """The training selection of a spec (shots of its classes, drawn with its seed)."""
    return load_dataset(
        spec.dataset, split="train", root=spec.root, shots=spec.shots, seed=spec.seed, subsample=spec.subsample
    )


def test_sets(spec: ExperimentSpec) -> dict[str, ImageDataset]:
    """The test selections a spec is scored on, each capped at `test_per_class` images per class."""

    def test(name: str, subsample: str) -> ImageDataset:
        ds = load_dataset(name, split="test", root=spec.root, seed=spec.seed, subsample=subsample)
        return ds.first_per_class(spec.test_per_class)

    sets = (
        {"base": test(spec.dataset, "base"), "novel": test(spec.dataset, "novel")}
        if spec.base2new
        else {"all": test(spec.dataset, "all")}
    )
    for name in spec.shifted:
        sets[short_name(name)] = test(name, spec.subsample)
    return sets


def short_name(dataset: str) -> str:
    return dataset.split("/")[-1]


def build_learner(spec: ExperimentSpec, clip: FrozenCLIP, train: ImageDataset) -> PromptLearner:
    """The untrained learner of `spec` for `train`'s classes: its seed, preset options, the dataset's template
    and the spec's options (explicit options win)."""
    options = {**preset_options(spec, clip), **learner_options(spec, train)}
    return create_learner(spec.method, clip, train.classnames, seed=spec.seed, **options)


def train_learner(
    spec: ExperimentSpec,
    clip: FrozenCLIP,
    *,
    device: str | None = None,
    progress: bool = False,
    on_step: Callable | None = None,
    on_epoch_end: Callable | None = None,
    checkpoint_dir: str | Path | None = None,
    train: ImageDataset | None = None,
    learner: PromptLearner | None = None,
) -> tuple[PromptLearner, History | None, ImageDataset, float]:
    """Seed, build and fit the learner of `spec` → (learner, history or None, training set, seconds).

    Learners without trainable parameters (zero-shot) are built and returned untrained.
    `checkpoint_dir` makes training resumable from its last finished epoch (see `fit`). `learner`: one
    already made by `build_learner(spec, clip, train)` (to watch it from callbacks); None builds it here.
    """
    seed_everything(spec.seed)
    train = train if train is not None else load_train(spec)
    learner = learner if learner is not None else build_learner(spec, clip, train)
    if not learner.num_trainable():
        return learner, None, train, 0.0
    t0 = time.perf_counter()
    history = fit(
        learner,
        train,
        **fit_settings(spec),
        seed=spec.seed,
        accumulate=spec.accumulate,
        device=device,
        precision=spec.precision,
        progress=progress,
        on_step=on_step,
        on_epoch_end=on_epoch_end,
        checkpoint_dir=checkpoint_dir,
    )
    return learner, history, train, time.perf_counter() - t0


def scorer_for(learner: PromptLearner, dataset: ImageDataset, spec: ExperimentSpec) -> PromptLearner:
    """The learner to score on `dataset`: a hand-template learner takes that dataset's template
    (unless the spec gave templates), keeping its own config and trained state; any other learner is itself."""
    template = hand_template_options(learner.name, dataset)
    own = learner.config.to_dict()
    if not template or set(template) & set(spec.options) or all(own[k] == v for k, v in template.items()):
        return learner  # no hand template, templates given explicitly, or already the dataset's own
    scorer = create_learner(
        learner.name, learner.clip, learner.classnames, seed=0, **{**learner.config.to_dict(), **template}
    )
    scorer.load_learner_state_dict(learner.learner_state_dict())  # the trained prompts, not a fresh init
    return scorer


def score(
    learner: PromptLearner, tests: dict[str, ImageDataset], spec: ExperimentSpec, *, device: str | None = None
) -> tuple[dict, dict[str, dict]]:
    """Evaluate on each test set → (metrics, full evaluations). Metrics: "accuracy" (the in-domain
    set), "base"/"novel"/"hm" under base-to-novel, and one accuracy per shifted suite."""
    evals = {
        key: evaluate(scorer_for(learner, ds, spec), ds, device=device, precision=spec.precision)
        for key, ds in tests.items()
    }
    if "base" in evals:
        metrics = {"accuracy": evals["base"]["accuracy"], **base_novel(evals["base"], evals["novel"])}
    else:
        metrics = {"accuracy": evals["all"]["accuracy"]}
    metrics |= {key: e["accuracy"] for key, e in evals.items() if key not in ("all", "base", "novel")}
    return metrics, evals


def zero_shot_metrics(
    spec: ExperimentSpec, clip: FrozenCLIP, tests: dict[str, ImageDataset] | None = None, *, device: str | None = None
) -> dict:
    """Zero-shot CLIP's metrics on the test sets of `spec` (each with its own template), keyed
    "zeroshot_<metric>" like `ExperimentResult.metrics`: the reference every tuned run is read against."""
    tests = tests if tests is not None else test_sets(spec)
    classnames = next(iter(tests.values())).classnames  # the trained classes (base under base-to-novel)
    zeroshot = create_learner("zeroshot", clip, classnames)  # templates: scorer_for picks each set's
    metrics, _ = score(zeroshot, tests, spec.replace(method="zeroshot", options={}, preset=None), device=device)
    return {f"zeroshot_{k}": v for k, v in metrics.items()}


def recipe_notes(spec: ExperimentSpec, learner: PromptLearner, train: ImageDataset) -> list[str]:
    """What a user should know about how the run was set up (printed by the CLI, kept in results)."""
    notes = []
    recipe = fit_settings(spec)
    epochs = recipe["epochs"] if recipe["epochs"] is not None else learner.preset.epochs
    if learner.num_trainable() and epochs == 1 and recipe["lr"] is not None:
        notes.append(
            f"with epochs=1 the only epoch is the warm-up at lr 1e-5: lr={recipe['lr']} is never used (use epochs ≥ 2)"
        )
    used = train.info.get("shots_used")
    if spec.shots is not None and used is not None and used < spec.shots:
        notes.append(
            f"asked for {spec.shots} shots, but some classes have only {used} training images: "
            f"{used} per class were used where fewer were available"
        )
    return notes


def run_experiment(
    spec: ExperimentSpec,
    clip: FrozenCLIP,
    *,
    device: str | None = None,
    progress: bool = False,
    on_step: Callable | None = None,
    on_epoch_end: Callable | None = None,
    checkpoint_dir: str | Path | None = None,
    label: str = "",
    learner: PromptLearner | None = None,
) -> ExperimentResult:
    """Seed, build, fit and score the experiment `spec` on `clip`.

    Args:
        device: "cpu", "cuda", … (default: cuda if available).
        progress: show training progress bars.
        on_step, on_epoch_end: `fit` callbacks (live plots, a stop button).
        checkpoint_dir: resumable training state (the CLI's `--resume`).
        label: the run's name in tables and figures (default: the method).
        learner: the spec's learner from `build_learner` (to watch it while it trains); None = built here.
    Returns:
        An `ExperimentResult`; `metrics` as described there.

    Example:
        >>> r = run_experiment(ExperimentSpec("coop", "toyworld/polygons", shots=4, epochs=2), clip)
        >>> r.metrics["accuracy"], r.metrics["zeroshot_accuracy"]
    """
    learner, history, train, seconds = train_learner(
        spec,
        clip,
        device=device,
        progress=progress,
        on_step=on_step,
        on_epoch_end=on_epoch_end,
        checkpoint_dir=checkpoint_dir,
        learner=learner,
    )
    tests = test_sets(spec)
    metrics, evals = score(learner, tests, spec, device=device)
    if spec.zeroshot_reference and learner.name != "zeroshot":
        metrics |= zero_shot_metrics(spec, clip, tests, device=device)
    for note in (notes := recipe_notes(spec, learner, train)):
        log.warning(note)
    return ExperimentResult(spec, learner, history, metrics, train, tests, evals, round(seconds, 2), notes, label)


__all__ = [
    "ExperimentResult",
    "ExperimentSpec",
    "build_learner",
    "fit_settings",
    "hand_template_options",
    "knob_options",
    "learner_options",
    "load_train",
    "preset_options",
    "recipe_notes",
    "run_experiment",
    "score",
    "scorer_for",
    "test_sets",
    "train_learner",
    "zero_shot_metrics",
]
