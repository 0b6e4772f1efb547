"""Analysis for the notebooks (needs the `notebooks` extra: plotly, umap-learn): attention maps,
gradient-weighted relevancy and deletion tests, embedding alignment and UMAP, intra-/inter-class
variance, nearest words of learned context, drift from the hand-crafted text features
(`regularisation`), and one-call experiments. Functions return numbers, tensors or plotly figures;
they never print. (`relevancy` here is the function; its module is
`importlib.import_module("mmprompt_lab.analysis.relevancy")`.)"""
from . import attention, embeddings, experiments, regularisation, variance, vocab
from .attention import (capture, cls_rollout, cross_modal_attention, cross_modal_figure, cross_modal_figure_of,
                        image_batch, overlay_figure, prompt_attention_figure, prompt_patch_maps, rollout_figure,
                        text_attention, text_attention_figure, text_attention_figure_of)
from .embeddings import (alignment_figure, centred, class_cosine, features, modality_gap, nearest_class_accuracy,
                         summary, umap_2d, umap_figure)
from .experiments import (accuracy_figure, compare, few_shot_curve, few_shot_figure, gains, gradient_figure,
                          history_figure, learner_accuracy, per_class_figure, results_figure, run_method, suite_figure,
                          table_figure, template_accuracy, template_figure, verdict, zero_shot_reference)
from .regularisation import (DriftTracker, TrackedRun, drift_figure, hand_crafted_features, seed_runs, spread,
                             spread_figure, spread_table, sweep, sweep_figure, text_distance, tracked_run)
from .relevancy import (ImageRelevancy, TextRelevancy, cls_attention, compare_relevancy, deletion_curve,
                        deletion_figure, explain, relevancy, relevancy_figure, text_relevancies, text_relevancy,
                        text_relevancy_figure)
from .variance import (class_variance, gain_vs_variance_figure, suite_variance, text_variance, tuned_variance,
                       variance_figure, variance_row, zero_shot_variance)
from .vocab import learned_context, nearest_words, vocab_figure

__all__ = ["DriftTracker", "TrackedRun", "drift_figure", "hand_crafted_features", "regularisation", "seed_runs",
           "spread", "spread_figure", "spread_table", "sweep", "sweep_figure", "text_distance", "tracked_run",
           "ImageRelevancy", "TextRelevancy", "cls_attention", "compare_relevancy", "deletion_curve", "deletion_figure",
           "explain", "relevancy", "relevancy_figure", "text_relevancies", "text_relevancy", "text_relevancy_figure",
           "cross_modal_figure_of", "gains", "per_class_figure", "prompt_attention_figure", "rollout_figure",
           "suite_figure", "suite_variance", "template_accuracy", "template_figure", "text_attention_figure_of",
           "tuned_variance", "zero_shot_variance",
           "alignment_figure", "attention", "capture", "class_cosine", "class_variance", "cls_rollout", "compare",
           "cross_modal_attention", "cross_modal_figure", "embeddings", "experiments", "features",
           "gain_vs_variance_figure", "history_figure", "image_batch", "learned_context", "modality_gap",
           "nearest_class_accuracy", "nearest_words", "overlay_figure", "prompt_patch_maps", "results_figure",
           "run_method", "summary", "table_figure", "text_attention", "text_attention_figure", "text_variance",
           "umap_2d", "umap_figure", "variance", "variance_figure", "variance_row", "vocab", "vocab_figure",
           "accuracy_figure", "centred", "few_shot_curve", "few_shot_figure", "gradient_figure", "learner_accuracy",
           "verdict", "zero_shot_reference"]
