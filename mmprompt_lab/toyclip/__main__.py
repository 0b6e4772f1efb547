"""`python -m mmprompt_lab.toyclip OUT_DIR --steps N ...`: run the pretraining recipe (resumable),
with a zero-shot check on the suites' validation splits every `--eval-every` steps."""

from __future__ import annotations

import argparse
import json
import logging

from .evaluate import zero_shot_report
from .model import PREPROCESS, get_tokenizer
from .pretrain import PretrainConfig, pretrain

EVAL_SUITES = {
    "shapes": "val",
    "polygons": "val",
    "patterns": "val",
    "scenes": "val",
    "clutter": "val",
    "shapes-sketch": "test",
}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("out_dir")
    d = PretrainConfig()
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--warmup", type=int, default=d.warmup)
    p.add_argument("--decay-steps", type=int, default=d.decay_steps)
    p.add_argument("--caption-name-p", type=float, default=d.caption_name_p)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--ckpt-every", type=int, default=50)
    p.add_argument("--eval-every", type=int, default=150)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    tokenizer = get_tokenizer()

    def eval_fn(model, step: int) -> dict | None:
        if step % args.eval_every and step != args.steps:
            return None
        out = {}
        for suite, split in EVAL_SUITES.items():
            out[suite] = zero_shot_report(model, tokenizer, PREPROCESS, [suite], split)[suite]["accuracy"]
        return out

    history = pretrain(
        args.out_dir,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        warmup=args.warmup,
        decay_steps=args.decay_steps,
        caption_name_p=args.caption_name_p,
        threads=args.threads,
        ckpt_every=args.ckpt_every,
        eval_fn=eval_fn,
    )
    logging.info("done: %s", json.dumps(history[-1]))


if __name__ == "__main__":
    main()
