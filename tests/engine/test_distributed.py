"""DDP on CPU (gloo, 2 processes): data is sharded, ranks stay in sync, rank 0 writes the epoch checkpoint."""

import json
import os
import socket
import subprocess
import sys
import textwrap


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SCRIPT = textwrap.dedent("""
    import json, os, sys, torch
    sys.path.insert(0, os.getcwd())
    from tests.conftest import tiny_open_clip
    from tests.engine.test_engine import blobs, COLOURS
    import open_clip
    from mmprompt_lab.backbone import FrozenCLIP
    from mmprompt_lab.engine import fit
    from mmprompt_lab.learners import create_learner
    torch.set_num_threads(1)
    clip = FrozenCLIP(tiny_open_clip(), open_clip.get_tokenizer("ViT-B-16", context_length=32), "tiny-test")
    torch.manual_seed(0)
    learner = create_learner("coop", clip, list(COLOURS), n_ctx=4)
    out = sys.argv[1]
    history = fit(learner, blobs(8), epochs=3, batch_size=4, lr=0.05, seed=1, progress=False,
                  checkpoint_dir=os.path.join(out, "ckpt"))
    rank = torch.distributed.get_rank()
    json.dump({"ctx": learner.ctx.flatten().tolist(), "steps": len(history.step_loss),
               "world": torch.distributed.get_world_size()}, open(os.path.join(out, f"rank{rank}.json"), "w"))
""")


def test_ddp_two_cpu_processes(tmp_path):
    script = tmp_path / "ddp_fit.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "WORLD_SIZE": "2"}
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(tmp_path)],
            cwd=os.getcwd(),
            env={**env, "RANK": str(r), "LOCAL_RANK": str(r)},
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in range(2)
    ]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errors
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2))
    assert r0["world"] == r1["world"] == 2
    assert r0["ctx"] == r1["ctx"]  # gradients were averaged: both ranks hold the same prompts
    assert r0["steps"] == 3 * (32 // 2 // 4)  # 32 images sharded over 2 ranks, batch 4
    assert (tmp_path / "ckpt" / "train_state.json").exists()
