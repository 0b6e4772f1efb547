"""One-call experiments on tiny settings."""
from mmprompt_lab import notebook_settings
from mmprompt_lab.analysis import experiments as X


def test_run_method_base_to_novel_and_shift(tiny_clip):
    S = notebook_settings(ci=True, pretrained=False, epochs=1, shots=1)
    r = X.run_method(tiny_clip, "coop", "toyworld/shapes", S, n_ctx=2, shifted=("toyworld/shapes-sketch",))
    assert set(r.metrics) == {"accuracy", "base", "novel", "hm", "shapes-sketch"}
    assert r.metrics["accuracy"] == r.metrics["base"]  # the in-domain accuracy under base-to-novel
    assert r.learner.classnames == S.dataset("toyworld/shapes", "train", "base").classnames
    assert len(r.history.step_loss) >= 1
    z = X.run_method(tiny_clip, "zeroshot", "toyworld/scenes", S, base_to_novel=False)
    assert z.history is None and set(z.metrics) == {"accuracy"}
    fig = X.results_figure([r, z], metrics=("base", "accuracy"))
    assert {d.name for d in fig.data} == {"coop", "zeroshot"}
    assert len(X.table_figure([r, z]).data[0].cells.values[0]) == 2
    assert len(X.history_figure([r, z]).data) == 1
