"""Evaluation protocols (docs/protocols.md): runners that write results JSONs, an aggregator that makes
paper-style tables and plotly figures beside the published numbers, and `predict` for own images.

    import mmprompt_lab as mpl
    from mmprompt_lab import protocols
    protocols.base2new("maple", seeds=(1, 2, 3), epochs=2)          # ToyCLIP on the ToyWorld suites
    print(protocols.markdown_report(protocols.load_results("runs/protocols")))
    mpl.predict("runs/protocols/checkpoints/<run>", ["my_image.png"], topk=3)
"""

from .aggregate import average, figures, load_results, markdown_report, mean_std, write_report
from .predict import predict
from .published import load_published, published_value
from .runner import (
    PROTOCOLS,
    Session,
    base2new,
    cross_dataset,
    default_datasets,
    domain_generalisation,
    few_shot,
    run_protocol,
)

__all__ = [
    "PROTOCOLS",
    "Session",
    "average",
    "base2new",
    "cross_dataset",
    "default_datasets",
    "domain_generalisation",
    "few_shot",
    "figures",
    "load_published",
    "load_results",
    "markdown_report",
    "mean_std",
    "predict",
    "published_value",
    "run_protocol",
    "write_report",
]
