"""Checkpoints as PEFT-style folders: save_pretrained / from_pretrained / load_learner give identical
logits for every learner, the JSON card says what a person needs, and cards are validated on load."""

import json
import logging

import open_clip
import pytest
import torch

import mmprompt_lab as mpl
from mmprompt_lab.engine.checkpoint import load_learner, read_card, save_learner
from mmprompt_lab.learners import create_learner, get_learner_class, list_learners

CLASSES = ["circle", "red star", "sea_lion"]


@pytest.fixture(scope="module")
def toyclip():
    return mpl.load_clip("toyclip", device="cpu")


def trained(learner):
    """Perturb every trainable tensor, so a round trip that drops one shows in the logits."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in learner.trainable_parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    return learner.eval()


@pytest.fixture
def saved(toyclip, tmp_path):
    learner = trained(create_learner("coop", toyclip, CLASSES, seed=1, n_ctx=4))
    learner.save_pretrained(tmp_path, extra={"metrics": {"accuracy": 61.5}})
    return learner, tmp_path


def edit_card(folder, **changes):
    path = folder / "learner.json"
    card = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            card.pop(key, None)
        else:
            card[key] = value
    path.write_text(json.dumps(card))
    return path


# ----------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("method", list_learners())
def test_round_trip_gives_identical_logits(method, toyclip, tmp_path):
    learner = trained(create_learner(method, toyclip, CLASSES, seed=1))
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        logits = learner(images)
    learner.save_pretrained(tmp_path)
    again = type(learner).from_pretrained(tmp_path)  # the backbone named in the card
    assert again is not learner and again.clip is not toyclip
    anyway = mpl.load_learner(tmp_path, toyclip)
    with torch.no_grad():
        assert torch.equal(again(images), logits) and torch.equal(anyway(images), logits)
    assert again.config == learner.config and again.classnames == CLASSES


def test_the_card_is_readable_and_complete(saved, toyclip):
    learner, folder = saved
    card = json.loads((folder / "learner.json").read_text())
    assert card["method"] == "coop" and card["config"]["n_ctx"] == 4 and card["classnames"] == CLASSES
    assert card["backbone"] == "toyclip" and card["backbone_sha256"] == toyclip.weights_sha256
    assert card["backbone_precision"] == "fp32" and card["mmprompt_lab_version"] == mpl.__version__
    assert card["metrics"] == {"accuracy": 61.5}
    assert sorted(p.name for p in folder.iterdir()) == ["learner.json", "learner.safetensors"]
    with pytest.raises(ValueError, match=r"extra keys \['method'\] would replace"):
        save_learner(learner, folder, extra={"method": "maple"})


def test_from_pretrained_checks_the_method(saved):
    _, folder = saved
    with pytest.raises(ValueError, match="holds a 'coop' learner, not 'maple'"):
        get_learner_class("maple").from_pretrained(folder)


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "changes,match",
    [
        ({"classnames": "circle"}, r"key 'classnames' must be a non-empty list of class names"),
        ({"classnames": ["circle", 3]}, r"key 'classnames' must be"),
        ({"config": ["n_ctx", 4]}, r"key 'config' must be a JSON object"),
        ({"config": {"n_ctxx": 4}}, r"key 'config': CoOpConfig has no option 'n_ctxx'. Did you mean 'n_ctx'"),
        ({"config": {"n_ctx": "four"}}, r"key 'config': CoOpConfig.n_ctx expects an integer, got 'four'"),
        ({"config": {"n_ctx": None}}, r"key 'config.n_ctx' is null"),
        ({"method": "coopp"}, r"key 'method': unknown method 'coopp'"),
        ({"backbone": 7}, r"key 'backbone' must be a backbone id"),
        ({"backbone_sha256": "abc"}, r"key 'backbone_sha256' must be a sha256"),
        ({"weights_sha256": None}, r"missing \['weights_sha256'\]"),
    ],
)
def test_bad_cards_get_one_clear_error_naming_file_and_key(saved, toyclip, changes, match):
    _, folder = saved
    path = edit_card(folder, **changes)
    with pytest.raises(ValueError, match=match) as err:
        load_learner(folder, toyclip)
    assert str(path) in str(err.value)


def test_a_card_that_is_not_an_object_is_refused(saved):
    _, folder = saved
    (folder / "learner.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"learner.json is not an mmprompt_lab learner card: a JSON object"):
        read_card(folder)


def test_other_backbone_weights_are_refused(saved, toyclip):
    _, folder = saved
    edit_card(folder, backbone_sha256="0" * 64)
    with pytest.raises(ValueError, match="weights hash to .*Load the weights it was trained on"):
        load_learner(folder)
    with pytest.raises(ValueError, match="weights sha256 000000000000"):
        load_learner(folder, toyclip)


def test_cards_without_a_backbone_hash_load_with_a_warning(saved, toyclip, caplog):
    learner, folder = saved
    edit_card(folder, backbone_sha256=None, backbone_precision=None, mmprompt_lab_version=None)
    with caplog.at_level(logging.WARNING, logger="mmprompt_lab.engine.checkpoint"):
        again = load_learner(folder, toyclip)
    assert "no backbone_sha256" in caplog.text
    torch.testing.assert_close(again.learner_state_dict(), learner.learner_state_dict(), rtol=0, atol=0)


def test_the_cards_backbone_comes_from_the_local_cache_only(saved, tmp_path, monkeypatch):
    _, folder = saved
    edit_card(folder, backbone="ViT-B-16:openai")
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HUB_OFFLINE", "MMPROMPT_ALLOW_DOWNLOAD"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))

    def no_network(*args, **kwargs):
        raise AssertionError("a checkpoint load asked the hub")

    monkeypatch.setattr(open_clip.pretrained, "hf_hub_download", no_network)
    with pytest.raises(RuntimeError, match="not in the local cache.*download=True"):
        load_learner(folder)
