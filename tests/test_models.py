"""Model sources: the registry, list_models, the local-cache-only loading of real weights (tags and
hf-hub: names), and the config-level support check agreeing with FrozenCLIP's."""

import ast
import copy
import json
import time
from pathlib import Path

import open_clip
import pytest
import torch
from safetensors.torch import save_file

import mmprompt_lab as mpl
from mmprompt_lab import models
from mmprompt_lab.backbone import FrozenCLIP, load_clip
from mmprompt_lab.models import (
    ModelTag,
    allow_download,
    cached_pretrained_file,
    get_model_source,
    list_models,
    parse_backbone_id,
    register_model_source,
    unsupported_reason,
)

PACKAGE = Path(mpl.__file__).parent
TINY = {
    "embed_dim": 48,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "patch_size": 8},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 4, "layers": 2},
}


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    """An empty Hugging Face / open_clip cache: every cache variable points into tmp_path."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # open_clip's ~/.cache/clip
    monkeypatch.delenv(models.DOWNLOAD_ENV, raising=False)
    return tmp_path / "hf" / "hub"


def cache_file(hub: Path, repo: str, filename: str, write) -> Path:
    """Put a file into a Hugging Face cache layout (refs/main → snapshots/<rev>/filename)."""
    rev = "0" * 40
    root = hub / f"models--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(rev)
    path = root / "snapshots" / rev / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    write(path)
    return path


def tiny_state(seed: int) -> dict:
    torch.manual_seed(seed)
    model = open_clip.CLIP(**{k: v for k, v in TINY.items()})
    return {k: v.contiguous() for k, v in model.state_dict().items()}


# ----------------------------------------------------------------------------- layering and registry
def test_backbone_and_registry_do_not_know_toyclip():
    for module in ("backbone.py", "models.py", "threads.py"):
        tree = ast.parse((PACKAGE / module).read_text())
        imported = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)] + [
            a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
        ]
        assert not any("toyclip" in name for name in imported), (module, imported)
    assert get_model_source("toyclip").name == "toyclip"
    assert get_model_source("ViT-B-16") is models.OPEN_CLIP


def test_registered_source_is_used_and_duplicates_refused(monkeypatch, tiny_clip):
    calls = []

    def load(name, pretrained, precision, download):
        calls.append((name, pretrained, precision, download))
        return models.LoadedModel(copy.deepcopy(tiny_clip.model), tiny_clip.tokenizer, "mini", pretrained)

    monkeypatch.setattr(models, "_SOURCES", dict(models._SOURCES))
    register_model_source("mini", load, cpu_threads=None)
    clip = load_clip("mini", pretrained="v1", device="cpu")
    assert isinstance(clip, FrozenCLIP) and clip.id == "mini:v1" and calls == [("mini", "v1", "fp32", False)]
    assert "mini" in list_models() and ModelTag("mini", None, True) in list_models("mini", pretrained=True)
    with pytest.raises(ValueError, match="already registered"):
        register_model_source("mini", load)


def test_parse_backbone_id_and_download_switch(monkeypatch):
    assert parse_backbone_id("toyclip") == ("toyclip", None)
    assert parse_backbone_id("ViT-B-16:openai") == ("ViT-B-16", "openai")
    assert parse_backbone_id("toyclip:/tmp/w.safetensors") == ("toyclip", "/tmp/w.safetensors")
    assert parse_backbone_id("hf-hub:timm/some-clip") == ("hf-hub:timm/some-clip", None)
    monkeypatch.delenv(models.DOWNLOAD_ENV, raising=False)
    assert allow_download() is False and allow_download(True) is True
    monkeypatch.setenv(models.DOWNLOAD_ENV, "1")
    assert allow_download() is True and allow_download(False) is False


# ----------------------------------------------------------------------------- list_models
def test_list_models_names_patterns_and_tags(empty_cache):
    names = list_models()
    assert names[0] == "toyclip" and names.count("toyclip") == 1
    assert {"ViT-B-16", "ViT-B-16-quickgelu", "ViT-L-14"} <= set(names)
    assert not {"RN50", "ViT-B-16-SigLIP", "coca_ViT-B-32", "convnext_base", "ViT-L-14-CLIPA"} & set(names)
    assert list_models("vit-b-16*") == [n for n in names if n.startswith("ViT-B-16")]
    assert list_models("*quickgelu") and all(n.endswith("quickgelu") for n in list_models("*quickgelu"))
    tags = list_models("ViT-B-16", pretrained=True)
    assert ModelTag("ViT-B-16", "openai", False) in tags and all(t.name == "ViT-B-16" for t in tags)
    assert list_models("toyclip", pretrained=True) == [ModelTag("toyclip", None, True)]


def test_cached_weights_are_found_in_the_hugging_face_cache(empty_cache):
    assert cached_pretrained_file("ViT-B-16", "openai") is None
    cfg = open_clip.get_pretrained_cfg("ViT-B-16", "openai")
    repo = cfg["hf_hub"].rstrip("/")
    path = cache_file(empty_cache, repo, "open_clip_model.safetensors", lambda p: p.write_bytes(b"x"))
    assert cached_pretrained_file("ViT-B-16", "openai") == str(path)
    assert ModelTag("ViT-B-16", "openai", True) in list_models("ViT-B-16", pretrained=True)


# ----------------------------------------------------------------------------- offline by default
def test_missing_real_weights_fail_fast_with_the_cache_and_the_opt_in(empty_cache, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # even online, nothing is requested

    def no_network(*args, **kwargs):
        raise AssertionError("load_clip asked the hub although downloading was not allowed")

    monkeypatch.setattr(open_clip.pretrained, "hf_hub_download", no_network)
    t0 = time.time()
    with pytest.raises(RuntimeError) as err:
        load_clip("ViT-B-16", pretrained="openai", device="cpu")
    assert time.time() - t0 < 5
    message = str(err.value)
    assert str(empty_cache) in message and "download=True" in message and models.DOWNLOAD_ENV in message
    with pytest.raises(RuntimeError, match="not in the local cache"):
        load_clip("hf-hub:mmpl-test/absent", device="cpu")


def test_a_cached_tag_loads_offline_with_its_preprocessing(empty_cache, monkeypatch):
    monkeypatch.setitem(open_clip.factory._MODEL_CONFIGS, "mmpl-tiny", copy.deepcopy(TINY))
    monkeypatch.setitem(
        open_clip.pretrained._PRETRAINED,
        "mmpl-tiny",
        {"test": {"hf_hub": "mmpl-test/tiny/", "quick_gelu": True, "mean": (0.1, 0.2, 0.3), "std": (0.5, 0.5, 0.5)}},
    )
    with pytest.raises(RuntimeError, match="not in the local cache"):
        load_clip("mmpl-tiny", pretrained="test", device="cpu")
    state = tiny_state(seed=3)
    cache_file(empty_cache, "mmpl-test/tiny", "open_clip_model.safetensors", lambda p: save_file(state, str(p)))
    monkeypatch.setattr(open_clip.pretrained, "hf_hub_download", None)  # any hub call would fail
    clip = load_clip("mmpl-tiny", pretrained="test", device="cpu")
    assert clip.id == "mmpl-tiny:test" and clip.mean == (0.1, 0.2, 0.3)
    assert torch.equal(clip.model.visual.proj, state["visual.proj"])
    assert ModelTag("mmpl-tiny", "test", True) in list_models("mmpl-tiny", pretrained=True)


def test_hf_hub_names_load_from_the_cache(empty_cache, monkeypatch):
    state = tiny_state(seed=4)
    repo = "mmpl-test/tiny-hub"
    cache_file(
        empty_cache,
        repo,
        "open_clip_config.json",
        lambda p: p.write_text(json.dumps({"model_cfg": TINY, "preprocess_cfg": {"mean": [0.4] * 3}})),
    )
    cache_file(empty_cache, repo, "open_clip_model.safetensors", lambda p: save_file(state, str(p)))
    monkeypatch.setattr(open_clip.pretrained, "hf_hub_download", None)
    clip = load_clip(f"hf-hub:{repo}", device="cpu")
    assert clip.id == f"hf-hub:{repo}" and clip.mean == (0.4, 0.4, 0.4)
    assert torch.equal(clip.model.token_embedding.weight, state["token_embedding.weight"])
    assert parse_backbone_id(clip.id) == (f"hf-hub:{repo}", None)
    with pytest.raises(ValueError, match="leave pretrained=None"):
        load_clip(f"hf-hub:{repo}", pretrained="openai", device="cpu")


# ----------------------------------------------------------------------------- the support check
VARIANTS = {
    "plain": {},
    "eos-pooled text": {"text_cfg": {"pool_type": "eos"}},
    "last-pooled text": {"text_cfg": {"pool_type": "last"}},
    "non-causal text": {"text_cfg": {"no_causal_mask": True}},
    "CoCa-style text cls": {"custom_text": True, "text_cfg": {"embed_cls": True}},
    "separate text module": {"custom_text": True},
    "no text projection": {"text_cfg": {"proj_type": "none"}},
    "avg-pooled vision": {"vision_cfg": {"pool_type": "avg"}},
    "attention-pooled vision": {"vision_cfg": {"attentional_pool": True, "attn_pooler_heads": 2}},
    "custom attention": {"vision_cfg": {"qk_norm": True}},
    "resnet vision": {"vision_cfg": {"layers": [1, 1, 1, 1], "width": 64, "image_size": 64}},
    "layer scale": {"vision_cfg": {"ls_init_value": 1e-4}},
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_config_check_agrees_with_frozen_clip(variant):
    config = copy.deepcopy(TINY)
    for key, changes in VARIANTS[variant].items():
        config[key] = {**config[key], **changes} if isinstance(changes, dict) else changes
    reason = unsupported_reason(config)
    cls = open_clip.CustomTextCLIP if config.pop("custom_text", False) else open_clip.CLIP
    model = cls(**config)
    try:
        FrozenCLIP(model, open_clip.get_tokenizer("ViT-B-16"), variant)
        refused = None
    except ValueError as err:
        refused = str(err)
    assert (reason is None) == (refused is None), (reason, refused)


@pytest.mark.parametrize("name", ["ViT-B-16", "ViT-S-32-alt", "coca_ViT-B-32", "RN50"])
def test_config_check_agrees_on_real_configs(name):
    model = open_clip.create_model(name, pretrained=None, device="meta")  # no memory, no weights
    try:
        FrozenCLIP(model, open_clip.get_tokenizer(name), name)
        refused = False
    except ValueError:
        refused = True
    assert refused == (unsupported_reason(open_clip.get_model_config(name)) is not None)
    assert (name in list_models()) == (not refused)


def test_unsupported_names_are_refused_before_building():
    t0 = time.time()
    with pytest.raises(ValueError, match="'RN50' cannot be prompt-tuned here: its image tower is a ResNet"):
        load_clip("RN50", device="cpu")
    with pytest.raises(ValueError, match="timm model"):
        load_clip("ViT-B-16-SigLIP", device="cpu")
    assert time.time() - t0 < 2


def test_a_missing_weights_file_name_is_a_file_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no weights file"):
        load_clip(str(tmp_path / "absent.safetensors"), device="cpu")
