"""The `mmprompt-lab list` tables, and the precomputed ViT-B/16 parameter counts checked live."""

import pytest

import mmprompt_lab as mpl
from mmprompt_lab import catalog
from mmprompt_lab.learners import create_learner, list_learners


@pytest.fixture(scope="module")
def toyclip():
    return mpl.load_clip("toyclip", device="cpu")


def test_precomputed_vit_b16_counts_match_live_counts(vit_b16):
    """`vit_b16` (conftest) is a random-weight ViT-B-16-quickgelu, built once per session."""
    stored = catalog.read_parameter_counts()
    assert list(stored) == list_learners(), "run mmprompt_lab.catalog.write_parameter_counts() after adding a learner"
    live = {n: create_learner(n, vit_b16, list(catalog.COUNT_CLASSNAMES)).num_trainable() for n in list_learners()}
    assert stored == live, "the defaults changed: rerun mmprompt_lab.catalog.write_parameter_counts()"


def test_format_table_aligns_and_never_truncates():
    long = "x" * 300
    text = catalog.format_table(["name", "value"], [["a", long], ["bbbb", 1]])
    lines = text.splitlines()
    assert lines[0] == "name  value" and lines[1] == "----  " + "-" * 300
    assert lines[2] == f"a     {long}" and lines[3] == "bbbb  1"


def test_methods_table(toyclip):
    text = catalog.methods_table(toyclip)
    rows = {line.split()[0]: line for line in text.splitlines()[2:]}
    assert list(rows) == list_learners()
    counts = catalog.read_parameter_counts()
    coop_toy = create_learner("coop", toyclip, list(catalog.COUNT_CLASSNAMES)).num_trainable()
    assert f"{counts['maple']:,}" in rows["maple"] and "arXiv:2210.03117" in rows["maple"]
    assert rows["coop"].rstrip().endswith(f"{coop_toy:,}") and "Context Optimization" in rows["coop"]
    assert catalog.method_paper("dcp") == (
        "Deeply coupled Cross-modal Prompt learning with CMPA (Liu et al., ACL Findings 2023, arXiv:2305.17903)"
    )


def test_datasets_table():
    text = catalog.datasets_table()
    rows = {line.split()[0]: line.split(None, 2) for line in text.splitlines()[2:]}
    assert list(rows) == mpl.list_datasets()
    assert rows["dtd"][1] == "47" and "manifest dtd.json" in rows["dtd"][2]
    assert rows["toyworld/shapes"][1] == "24" and rows["toyworld/shapes"][2].startswith("ToyWorld generator")
    assert rows["folder"][1] == "yours"


def test_models_table_and_lists(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    text = catalog.models_table("ViT-B-16*")
    rows = [line.split() for line in text.splitlines()[2:]]
    assert ["ViT-B-16", "openai", "no"] in rows and ["ViT-B-16-quickgelu", "openai", "no"] in rows
    assert ["ViT-B-16-plus", "-", "(random", "weights", "only)", "-"] in rows
    row = catalog.models_table("toyclip").splitlines()[2].split()
    assert row == ["toyclip", "(default:", "shipped", "weights)", "yes"]
    coops = mpl.list_learners("*COOP")
    assert coops == [n for n in mpl.list_learners() if n.endswith("coop")] and {"coop", "cocoop"} <= set(coops)
    assert mpl.list_learners("nothing*") == []


def test_list_tables_and_version(toyclip):
    text = catalog.list_tables(toyclip)
    assert text.startswith("Methods\n") and "\n\nDatasets\n" in text and "\n\nModels (" in text
    assert catalog.version_text().startswith(f"mmprompt_lab {mpl.__version__} (torch ")
