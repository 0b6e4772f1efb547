"""Analysis for the notebooks (needs the `notebooks` extra: plotly, umap-learn): attention maps,
gradient-weighted relevancy and deletion tests, embedding alignment and UMAP, intra-/inter-class
variance, nearest words of learned context, drift from the hand-crafted text features
(`regularisation`), and one-call experiments. Functions return numbers, tensors or plotly figures;
they never print. (`relevancy` here is the function; its module is
`importlib.import_module("mmprompt_lab.analysis.relevancy")`. Likewise `compare` is the function of
`experiments`; the side-by-side module over seeds is `importlib.import_module("mmprompt_lab.analysis.compare")`,
whose functions are re-exported here. `inspect`: what prompts learned, what they depend on, failures.)"""
from . import attention, embeddings, experiments, inspect, regularisation, variance, vocab
from .attention import (capture, cls_rollout, cross_modal_attention, cross_modal_figure, cross_modal_figure_of,
                        image_batch, overlay_figure, prompt_attention_figure, prompt_patch_maps, rollout_figure,
                        text_attention, text_attention_figure, text_attention_figure_of)
# before `experiments`: importing the module `compare` binds the name, and the function `compare` must win
from .compare import (Variant, effective_prompts, gradient_norms, gradient_table, groups_table, initial_learner,
                      learners_of, logit_gap, maple_as_ivlp, maple_vs_ivlp, mean_std, parameter_groups,
                      parameter_table, pass_dependence, prompt_travel, run_learner, run_seeds, summarize,
                      summary_figure, summary_table, variant)
from .embeddings import (alignment_figure, centred, class_cosine, features, modality_gap, nearest_class_accuracy,
                         summary, umap_2d, umap_figure)
from .experiments import (accuracy_figure, compare, few_shot_curve, few_shot_figure, gains, gradient_figure,
                          history_figure, learner_accuracy, per_class_figure, results_figure, run_method, suite_figure,
                          table_figure, template_accuracy, template_figure, verdict, zero_shot_reference)
from .inspect import (ablate_tokens, ablation_figure, attention_received, batch_sensitivity, confused_pairs,
                      context_words, dafe_gates, dafe_off, dafe_off_accuracy, dependence_table, failure_table,
                      gallery_figure, input_dependence, layer_inputs, misclassified, stats_table, vision_prompt_stats,
                      vocabulary_scale, words_table, written_prompts)
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
           "Variant", "effective_prompts", "gradient_norms", "gradient_table", "groups_table", "initial_learner",
           "learners_of", "logit_gap", "maple_as_ivlp", "maple_vs_ivlp", "mean_std", "parameter_groups",
           "parameter_table", "pass_dependence", "prompt_travel", "run_learner", "run_seeds", "summarize",
           "summary_figure", "summary_table", "variant", "ablate_tokens", "ablation_figure", "attention_received",
           "batch_sensitivity", "confused_pairs", "context_words", "dafe_gates", "dafe_off", "dafe_off_accuracy",
           "dependence_table", "failure_table", "gallery_figure", "input_dependence", "inspect", "layer_inputs",
           "misclassified", "stats_table", "vision_prompt_stats", "vocabulary_scale", "words_table", "written_prompts",
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
