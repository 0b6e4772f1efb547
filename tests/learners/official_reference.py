"""Independent re-statements of the official MaPLe-repo forwards (clip/model.py: CLIP.encode_text,
VisionTransformer.forward, ResidualAttentionBlock_IVLP), written against the raw open_clip modules
at full context length and reading prompt tensors by their *official* names. The learners go through
FrozenCLIP's step-wise, EOT-truncated runner; these do not, so agreement checks both."""

import torch


def official_dict(shapes: dict, seed: int = 0) -> dict:
    """Random tensors for official names → shapes (what a released checkpoint would hold)."""
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(*s, generator=g) * 0.1 for k, s in shapes.items()}


def prompt_embeddings(model, tokenizer, prefix: str, classnames, ctx, n_ctx: int):
    """Official construct_prompts: tokenise "prefix class.", splice ctx (C|B·C, M, Dt) at 1..M."""
    texts = [f"{prefix} {c.replace('_', ' ')}." for c in classnames]
    tokens = tokenizer(texts)  # (C, L)
    emb = model.token_embedding(tokens)  # (C, L, Dt)
    ctx = ctx.expand(len(texts), -1, -1) if ctx.ndim == 2 else ctx
    return torch.cat([emb[:, :1], ctx, emb[:, 1 + n_ctx :]], dim=1), tokens


def text_features(model, prompts, tokens, deep: dict | None = None):
    """Full-length text tower; deep {block i: (M, Dt)} replaces positions 1..M before block i."""
    x = prompts + model.positional_embedding  # (N, L, Dt)
    for i, block in enumerate(model.transformer.resblocks):
        if deep and i in deep:
            m = deep[i].shape[0]
            x = torch.cat([x[:, :1], deep[i].expand(x.shape[0], -1, -1), x[:, 1 + m :]], dim=1)
        x = block(x, attn_mask=model.attn_mask)
    x = model.ln_final(x)
    return x[torch.arange(x.shape[0]), tokens.argmax(dim=-1)] @ model.text_projection  # (N, E)


def image_features(model, images, sd: dict | None = None):
    """Official VisionTransformer.forward with `image_encoder.VPT` / `...resblocks.{i}.VPT_shallow`."""
    v = model.visual
    x = v.conv1(images).flatten(2).transpose(1, 2)  # (B, P, Dv)
    cls = v.class_embedding + torch.zeros(x.shape[0], 1, x.shape[-1])
    x = torch.cat([cls, x], dim=1) + v.positional_embedding  # (B, 1+P, Dv)
    if sd and "image_encoder.VPT" in sd:
        x = torch.cat([x, sd["image_encoder.VPT"].expand(x.shape[0], -1, -1)], dim=1)
    x = v.ln_pre(x)
    for i, block in enumerate(v.transformer.resblocks):
        key = f"image_encoder.transformer.resblocks.{i}.VPT_shallow"
        if sd and key in sd:
            n = sd[key].shape[0]
            x = torch.cat([x[:, :-n], sd[key].expand(x.shape[0], -1, -1)], dim=1)
        x = block(x)
    return v.ln_post(x[:, 0]) @ v.proj  # (B, E)


def logits(model, img, txt):
    img = img / img.norm(dim=-1, keepdim=True)
    txt = txt / txt.norm(dim=-1, keepdim=True)
    return model.logit_scale.exp() * img @ txt.t()


def assert_logits_and_grads_match(ours, ref, params, labels, atol: float = 1e-5) -> None:
    """Our logits equal the reference's, and so do the cross-entropy gradients of every parameter."""
    import torch.nn.functional as F

    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=atol)
    grads = torch.autograd.grad(F.cross_entropy(ours, labels), params, retain_graph=True)
    ref_grads = torch.autograd.grad(F.cross_entropy(ref, labels), params)
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-6)
