"""Shared fixtures: small random-weight CLIPs built by open_clip itself (no downloads)."""

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a missing cache fails fast instead of hanging
torch.set_num_threads(1)  # tiny models: one thread is fastest, and never stalls on a shared CPU
torch.set_flush_denormal(True)


def tiny_open_clip(
    seed: int = 0, text_width: int = 64, vision_width: int = 96, text_layers: int = 3, vision_layers: int = 4
):
    """A random open_clip CLIP with different text/vision widths and depths (32 px, patch 8)."""
    import open_clip

    torch.manual_seed(seed)
    model = open_clip.CLIP(
        embed_dim=48,
        vision_cfg=open_clip.CLIPVisionCfg(
            layers=vision_layers, width=vision_width, head_width=32, patch_size=8, image_size=32
        ),
        text_cfg=open_clip.CLIPTextCfg(
            context_length=32, vocab_size=49408, width=text_width, heads=4, layers=text_layers
        ),
        quick_gelu=True,
    )
    # open_clip zero-inits some weights; perturb everything so bugs cannot hide behind zeros
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return model.eval()


@pytest.fixture(scope="session")
def tiny_clip():
    """FrozenCLIP over `tiny_open_clip` (text 64 wide × 3 blocks, vision 96 wide × 4 blocks)."""
    import open_clip

    from mmprompt_lab.backbone import FrozenCLIP

    return FrozenCLIP(tiny_open_clip(), open_clip.get_tokenizer("ViT-B-16", context_length=32), "tiny-test")


@pytest.fixture(scope="session")
def vit_b16():
    """Random-weight ViT-B-16-quickgelu (149.6 M parameters, ~3 s to build)."""
    import open_clip

    from mmprompt_lab.backbone import FrozenCLIP

    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-16-quickgelu", pretrained=None)
    return FrozenCLIP(model, open_clip.get_tokenizer("ViT-B-16-quickgelu"), "ViT-B-16-quickgelu")


@pytest.fixture
def images():
    torch.manual_seed(1)
    return torch.randn(3, 3, 32, 32)


CLASSNAMES = ["circle", "red star", "sea_lion", "house"]
