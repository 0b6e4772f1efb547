"""Methods side by side, over seeds: every variant of a lesson trained on the same suite with the
same seeds (through the one pipeline, `run_method`), summarised as mean ± std with trainable
parameter counts and training time; and where two variants differ when their accuracies cannot
tell them apart (trainable parameters per module, gradients, what a pass's prompts depend on).
Also the two halves of the "parameter coupling" argument of notebook 11: a MaPLe prompt set
rewritten as an IVLP one (`maple_as_ivlp`), and a hand-built learner trained and scored with a
spec's recipe (`run_learner`, for matched starts).

    runs = run_seeds(clip, ["zeroshot", "upt", variant("upt", "upt (code)", attend_across_tokens=False)],
                     "toyworld/polygons", S, seeds=(1, 2, 3))
    rows = summarize(runs)          # one row per variant: base / novel / hm mean and std, params, seconds
    summary_table(rows)

The module shares its name with `analysis.compare` (the function of `analysis.experiments`); import it
as `mmprompt_lab.analysis.compare` or use the functions re-exported by `mmprompt_lab.analysis`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import plotly.graph_objects as go
import torch
from torch import Tensor

from ..experiment import (
    ExperimentResult,
    ExperimentSpec,
    learner_options,
    load_train,
    preset_options,
    run_experiment,
    score,
    test_sets,
    train_learner,
)
from ..learners import create_learner
from ..learners.base import PromptLearner
from ..settings import NotebookSettings
from .experiments import run_method
from .inspect import evaluating
from .parameters import gradient_norms, parameter_group, parameter_groups


# ----------------------------------------------------------------------------- runs over seeds
@dataclass(frozen=True)
class Variant:
    """One row of a side-by-side comparison: a method, its learner options and the label it is shown under."""

    method: str
    label: str = ""  # default: the method's name
    options: dict = field(default_factory=dict)  # learner options (`create_learner` overrides)

    @property
    def name(self) -> str:
        return self.label or self.method


def variant(method: str, label: str = "", **options) -> Variant:
    """`Variant(method, label, options)`; e.g. `variant("dcp", "dcp (code)", text_writeback=False)`."""
    return Variant(method, label, dict(options))


def run_seeds(
    clip,
    variants: Iterable[str | Variant],
    suite: str,
    settings: NotebookSettings,
    *,
    seeds: Sequence[int] = (1, 2, 3),
    **kwargs,
) -> list[ExperimentResult]:
    """Train and score every variant once per seed (`run_method` with `settings.seed` replaced).

    Args:
        variants: method names or `Variant`s (a label and learner options).
        seeds: the same seeds for every variant (prompt init, few-shot draw, data order).
        kwargs: passed to every `run_method` call (e.g. `n_ctx`, `base_to_novel`, `shifted`);
            a variant's own options win.
    Returns:
        The results, variants outer, seeds inner; each labelled with its variant's name.

    Example:
        >>> runs = run_seeds(clip, ["zeroshot", "maple"], "toyworld/polygons", S, seeds=(1, 2))
    """
    out = []
    for v in variants:
        v = v if isinstance(v, Variant) else Variant(v)
        for seed in seeds:
            s = dataclasses.replace(settings, seed=seed)
            out.append(run_method(clip, v.method, suite, s, name=v.name, **{**kwargs, **v.options}))
    return out


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n − 1 in the denominator; 0 for a single value)."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("mean_std needs at least one value")
    mean = sum(values) / len(values)
    if len(values) == 1:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def summarize(
    results: Sequence[ExperimentResult],
    metrics: Sequence[str] = ("base", "novel", "hm"),
    reference: str | None = "zeroshot",
) -> list[dict]:
    """One row per variant (in order of first appearance), over its seeds.

    Row keys: "method" (the label), "seeds" (how many runs), "trainable" (parameters; the same for every
    seed), "train_s" (mean training seconds), "<metric>" and "<metric>_std" for each metric (mean and
    sample std, %), and "below_reference": the metrics whose mean is below the `reference` variant's
    mean (empty for the reference itself, or when it is absent).
    """
    groups: dict[str, list[ExperimentResult]] = {}
    for r in results:
        groups.setdefault(r.method, []).append(r)
    rows = []
    for name, runs in groups.items():
        row = {
            "method": name,
            "seeds": len(runs),
            "trainable": runs[0].learner.num_trainable(),
            "train_s": mean_std([r.train_seconds for r in runs])[0],
        }
        for m in metrics:
            row[m], row[f"{m}_std"] = mean_std([r.metrics[m] for r in runs])
        rows.append(row)
    ref = next((row for row in rows if row["method"] == reference), None)
    for row in rows:
        row["below_reference"] = [] if ref is None or row is ref else [m for m in metrics if row[m] < ref[m]]
    return rows


def _metrics_of(rows: list[dict]) -> list[str]:
    return [k for k in rows[0] if f"{k}_std" in rows[0]]


def summary_table(rows: list[dict], reference: str = "zero-shot") -> go.Figure:
    """The rows of `summarize` as a table: mean ± std per metric, trainable parameters, seconds, and which
    metrics fall below the reference (marked ▼)."""
    metrics = _metrics_of(rows)
    header = ["method", "seeds", "trainable", "train s"] + metrics + [f"below {reference}"]
    cols = [
        [r["method"] for r in rows],
        [r["seeds"] for r in rows],
        [f"{r['trainable']:,}" for r in rows],
        [f"{r['train_s']:.1f}" for r in rows],
    ]
    cols += [
        [f"{r[m]:.1f} ± {r[f'{m}_std']:.1f}" + (" ▼" if m in r["below_reference"] else "") for r in rows]
        for m in metrics
    ]
    cols.append([", ".join(r["below_reference"]) for r in rows])
    fig = go.Figure(go.Table(header=dict(values=header), cells=dict(values=cols)))
    fig.update_layout(height=70 + 30 * len(rows), margin=dict(t=10, b=10, l=10, r=10))
    return fig


def summary_figure(rows: list[dict], title: str = "") -> go.Figure:
    """Grouped bars: one group per metric, one bar per variant at its mean, error bars ± one std."""
    metrics = _metrics_of(rows)
    fig = go.Figure()
    for r in rows:
        fig.add_bar(
            name=r["method"],
            x=metrics,
            y=[r[m] for m in metrics],
            error_y=dict(type="data", array=[r[f"{m}_std"] for m in metrics]),
            text=[f"{r[m]:.1f}" for m in metrics],
            textposition="inside",
        )
    fig.update_layout(
        barmode="group",
        title=title or f"mean ± std over {rows[0]['seeds']} seeds (%)",
        yaxis_title="%",
        yaxis_range=[0, 105],
        height=400,
        margin=dict(t=50, b=40, l=50, r=20),
    )
    return fig


# ----------------------------------------------------------------------------- where variants differ
def pass_dependence(learner: PromptLearner, output: str, wrt: Sequence[str], seed: int = 0) -> dict[str, float]:
    """How much what a pass computes depends on some parameters: ‖∂⟨r, begin_pass()[output]⟩/∂θ‖ for each
    parameter name in `wrt` (r a fixed random direction). 0 means `output` does not read θ at all — e.g.
    UPT's text context (`output="ctx"`) and its vision prompts (`wrt=["vision_ctx"]`) with the released
    code's mixer (`attend_across_tokens=False`)."""
    params = dict(learner.named_parameters())
    unknown = [w for w in wrt if w not in params]
    if unknown:
        raise ValueError(f"{learner.name} has no parameters {unknown}; it has {sorted(params)[:12]}…")
    state = learner.begin_pass()
    if output not in state:
        raise ValueError(f"{learner.name}'s pass computes {sorted(state) or 'nothing'}, not {output!r}")
    out = state[output]
    r = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed)).to(out)
    grads = torch.autograd.grad((r * out).sum(), [params[w] for w in wrt], allow_unused=True)
    return {w: 0.0 if g is None else float(g.norm()) for w, g in zip(wrt, grads, strict=True)}


def groups_table(columns: dict[str, dict[str, float]], fmt: str = "{:,.0f}", title: str = "") -> go.Figure:
    """A table with one row per parameter group and one column per variant (e.g. `parameter_groups` or
    `gradient_norms` of several learners); a group a variant lacks shows "—"."""
    groups = list(dict.fromkeys(g for col in columns.values() for g in col))
    cells = [groups] + [[fmt.format(col[g]) if g in col else "—" for g in groups] for col in columns.values()]
    fig = go.Figure(go.Table(header=dict(values=["group"] + list(columns)), cells=dict(values=cells)))
    fig.update_layout(
        title=title or None, height=90 + 28 * len(groups), margin=dict(t=40 if title else 10, b=10, l=10, r=10)
    )
    return fig


def learners_of(results: Sequence[ExperimentResult], seed: int | None = None) -> dict[str, PromptLearner]:
    """{label: trained learner} with one learner per variant: the run of `seed` (default: each variant's first)."""
    out: dict[str, PromptLearner] = {}
    for r in results:
        if (seed is None and r.method not in out) or r.spec.seed == seed:
            out[r.method] = r.learner
    return out


def parameter_table(learners: dict[str, PromptLearner], names: Sequence[str] | None = None) -> go.Figure:
    """Trainable parameters per group (`parameter_groups`) of the named learners, side by side."""
    names = list(learners) if names is None else list(names)
    return groups_table({n: parameter_groups(learners[n]) for n in names}, title="trainable parameters per group")


def gradient_table(learners: dict[str, PromptLearner], names: Sequence[str], dataset, n: int = 8) -> go.Figure:
    """‖∂loss/∂θ‖ per parameter group (`gradient_norms`, one batch of `dataset`) of the named learners."""
    return groups_table(
        {k: gradient_norms(learners[k], dataset, n) for k in names},
        fmt="{:.3g}",
        title=f"gradient norm per group, one batch of {n} images (0 = never learns)",
    )


# ----------------------------------------------------------------------------- parameter coupling
@torch.no_grad()
def maple_as_ivlp(maple: PromptLearner, classnames: list[str] | None = None) -> PromptLearner:
    """An IVLP learner holding exactly the prompts a MaPLe learner feeds its towers: the same text prompts
    P_0..P_{J-1}, and as free vision prompts the values MaPLe computes, V_i = F_i(P_i). Its logits equal
    MaPLe's: every MaPLe prompt set is an IVLP prompt set (MaPLe restricts how prompts are *parameterised*
    and therefore how gradient descent moves them, not which prompts can be reached).

    Example:
        >>> ivlp = maple_as_ivlp(maple)
        >>> torch.equal(ivlp(images), maple(images))
    """
    if maple.name != "maple":
        raise ValueError(f"maple_as_ivlp converts a 'maple' learner, got {maple.name!r}")
    cfg = maple.config
    ivlp = create_learner(
        "ivlp",
        maple.clip,
        classnames or maple.classnames,
        seed=0,
        n_ctx_text=cfg.n_ctx,
        n_ctx_vision=cfg.n_ctx,
        text_depth=cfg.depth,
        vision_depth=cfg.depth,
        ctx_init=cfg.ctx_init,
    )
    ivlp.to(maple.ctx.device)
    ivlp.ctx.copy_(maple.ctx)  # P_0 (M, Dt)
    ivlp.vision_ctx.copy_(maple.proj(maple.ctx))  # V_0 = F_0(P_0) (M, Dv)
    for k in range(cfg.depth - 1):
        ivlp.deep_text[k].copy_(maple.deep_text[k])  # P_{k+1} (M, Dt)
        ivlp.deep_vision[k].copy_(maple.deep_proj[k](maple.deep_text[k]))  # V_{k+1} = F_{k+1}(P_{k+1}) (M, Dv)
    return ivlp


@torch.no_grad()
def logit_gap(a: PromptLearner, b: PromptLearner, images: Tensor) -> float:
    """max |logits_a − logits_b| on `images` (B, 3, H, W): 0.0 when two learners are the same classifier."""
    device = a.clip.device
    with evaluating(a, b):
        return float((a(images.to(device)) - b(images.to(device))).abs().max())


def initial_learner(result: ExperimentResult) -> PromptLearner:
    """The learner of a finished run as it was before training: rebuilt from its spec and seed (prompt
    initialisation is fixed by the seed, so this is the exact starting point)."""
    return _build(result.spec, result.learner.clip, result.train)


def _build(spec: ExperimentSpec, clip, train) -> PromptLearner:
    """The untrained learner of `spec`, built as the pipeline builds it (seed, preset, template, options)."""
    options = {**preset_options(spec, clip), **learner_options(spec, train)}  # explicit options win
    return create_learner(spec.method, clip, train.classnames, seed=spec.seed, **options)


def effective_prompts(learner: PromptLearner) -> dict[str, Tensor]:
    """The prompts an IVLP or MaPLe learner feeds its towers, per block: {"text i": P_i (M, Dt),
    "vision i": V_i (N, Dv)} (MaPLe's V_i = F_i(P_i), via `maple_as_ivlp`). Detached copies."""
    if learner.name == "maple":
        learner = maple_as_ivlp(learner)
    if learner.name != "ivlp":
        raise ValueError(f"effective_prompts reads IVLP or MaPLe learners, got {learner.name!r}")
    text = [learner.ctx, *learner.deep_text]
    vision = [learner.vision_ctx, *learner.deep_vision] if learner.has_vision_prompts else []
    return {
        **{f"text {i}": p.detach().clone() for i, p in enumerate(text)},
        **{f"vision {i}": p.detach().clone() for i, p in enumerate(vision)},
    }


def prompt_travel(start: dict[str, Tensor], learner: PromptLearner) -> dict[str, float]:
    """How far training moved each block's effective prompts: ‖end − start‖ per key of `start`
    (`effective_prompts` of the learner before training)."""
    end = effective_prompts(learner)
    return {k: float((end[k] - v).norm()) for k, v in start.items()}


def maple_vs_ivlp(
    clip, suite: str, settings: NotebookSettings, *, seeds: Sequence[int] = (1, 2, 3), **options
) -> list[ExperimentResult]:
    """Parameter coupling, isolated: per seed, "maple"; "ivlp (maple start)", an IVLP learner started from
    exactly MaPLe's initial prompts (`maple_as_ivlp` of the untrained MaPLe, so both begin with identical
    logits) and trained with the same recipe, data order and budget; and "ivlp (own start)", IVLP with its
    own initialisation. Options (e.g. `n_ctx`, `depth`) go to MaPLe; the IVLP learners mirror them.
    Returns the results seeds outer, in that order."""
    out = []
    for seed in seeds:
        s = dataclasses.replace(settings, seed=seed)
        maple_spec = s.spec("maple", suite, clip, **options)
        maple = _build(maple_spec, clip, load_train(maple_spec))
        twin = maple_as_ivlp(maple)
        cfg = maple.config
        own = dict(
            n_ctx_text=cfg.n_ctx,
            n_ctx_vision=cfg.n_ctx,
            text_depth=cfg.depth,
            vision_depth=cfg.depth,
            ctx_init=cfg.ctx_init,
        )
        ivlp_spec = s.spec("ivlp", suite, clip, **own)
        out += [
            run_learner(maple, maple_spec, device=s.device, label="maple"),
            run_learner(twin, ivlp_spec, device=s.device, label="ivlp (maple start)"),
            run_experiment(ivlp_spec, clip, device=s.device, label="ivlp (own start)"),
        ]
    return out


def run_learner(
    learner: PromptLearner, spec: ExperimentSpec, *, device: str | None = None, label: str = ""
) -> ExperimentResult:
    """Train an already-built learner with a spec's recipe (its seed, shots, epochs, lr, batch size, preset) and
    score it on the spec's test sets — `run_experiment` for a learner made by hand (e.g. an IVLP learner
    started from MaPLe's initial prompts, `maple_as_ivlp`). The spec's method only names the recipe.

    Example:
        >>> twin = maple_as_ivlp(fresh_maple)
        >>> r = run_learner(twin, S.spec("ivlp", "toyworld/polygons", clip), label="ivlp (maple start)")
    """
    train = load_train(spec)
    with learner.use_classnames(train.classnames):
        _, history, _, seconds = train_learner(spec, learner.clip, device=device, train=train, learner=learner)
    tests = test_sets(spec)
    metrics, evals = score(learner, tests, spec, device=device)
    return ExperimentResult(spec, learner, history, metrics, train, tests, evals, round(seconds, 2), [], label)


__all__ = [
    "Variant",
    "effective_prompts",
    "gradient_norms",
    "gradient_table",
    "groups_table",
    "initial_learner",
    "learners_of",
    "logit_gap",
    "parameter_table",
    "maple_as_ivlp",
    "maple_vs_ivlp",
    "mean_std",
    "parameter_group",
    "parameter_groups",
    "pass_dependence",
    "prompt_travel",
    "run_learner",
    "run_seeds",
    "summarize",
    "summary_figure",
    "summary_table",
    "variant",
]
