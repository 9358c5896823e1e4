"""A tiny DPO setup built on this machine, nothing downloaded: for the tests, the benchmark and the how-to.

A GPT-2 of ``n_layer`` layers and width ``n_embd`` from a ``GPT2Config`` (dropout off), a
word-level tokenizer of ``vocab`` words ``w0 w1 ...`` (``tokenizers`` WordLevel wrapped in
``PreTrainedTokenizerFast``, EOS and pad as special tokens), and an in-memory
``datasets.Dataset`` of ``n_pairs`` random prompts with two random completions each.
TRL's CPU settings are set explicitly (no bf16, no gradient checkpointing, a sequential
sampler so batches are known, no reports, no checkpoints unless asked).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here may be downloaded
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from flowsim.integrations.trl import INSTALL_HINT  # after the environment: nothing below may download

try:
    import torch
    from datasets import Dataset
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast
    from trl import DPOConfig, DPOTrainer
except ModuleNotFoundError:
    raise ModuleNotFoundError(INSTALL_HINT) from None

SPECIAL = ("<pad>", "<eos>", "<unk>")


def tokenizer(vocab: int = 29) -> PreTrainedTokenizerFast:
    """A word-level tokenizer of ``<pad> <eos> <unk> w0 ... w{vocab-1}`` (whitespace-split)."""
    words = [*SPECIAL, *(f"w{i}" for i in range(vocab))]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>", unk_token="<unk>")


def pairs(
    n_pairs: int = 16,
    vocab: int = 29,
    prompt_len: int = 3,
    completion_len: int | tuple[int, int] = 2,
    seed: int = 1,
) -> Dataset:
    """``n_pairs`` random (prompt, chosen, rejected) texts of the tokenizer's words.

    ``completion_len`` (lo, hi): each completion's length drawn in lo..hi (TRL then pads the batches).
    """
    g = torch.Generator().manual_seed(seed)

    def text(n) -> str:
        if isinstance(n, tuple):
            n = int(torch.randint(n[0], n[1] + 1, (1,), generator=g))
        return " ".join(f"w{int(i)}" for i in torch.randint(0, vocab, (n,), generator=g))

    rows = [(text(prompt_len), " " + text(completion_len), " " + text(completion_len)) for _ in range(n_pairs)]
    return Dataset.from_dict({k: [r[i] for r in rows] for i, k in enumerate(("prompt", "chosen", "rejected"))})


def model(vocab: int = 29, n_layer: int = 2, n_embd: int = 32, seed: int = 0) -> GPT2LMHeadModel:
    """A GPT-2 from its config (float32, dropout off), initialised with ``seed``."""
    torch.manual_seed(seed)
    cfg = GPT2Config(
        vocab_size=vocab + len(SPECIAL),
        n_positions=32,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=2,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=1,
        eos_token_id=1,
        pad_token_id=0,
    )
    return GPT2LMHeadModel(cfg)


def trainer(
    out: str | Path,
    n_pairs: int = 16,
    steps: int = 20,
    batch_size: int = 4,
    lr: float = 1e-2,
    beta: float = 0.1,
    n_layer: int = 2,
    n_embd: int = 32,
    threads: int | None = 1,
    dtype: torch.dtype | None = None,
    completion_len: int | tuple[int, int] = 2,
    **config: Any,
) -> DPOTrainer:
    """A DPOTrainer of the tiny model on ``n_pairs`` pairs for ``steps`` steps, writing under ``out``.

    The reference is a deep copy of the model made before the trainer is built.  ``threads`` sets
    torch's (process-wide) thread count: at this size threads only cost (20 steps: 2.0 s on one
    thread, 8.9 s on two, measured on the shared 2-core machine under load); None leaves it.
    ``dtype`` casts the model (and its reference), e.g. float64 for exact comparisons;
    ``completion_len`` is :func:`pairs`'s.
    """
    if threads is not None:
        torch.set_num_threads(threads)
    policy = model(n_layer=n_layer, n_embd=n_embd)
    if dtype is not None:
        policy = policy.to(dtype)
    ref = copy.deepcopy(policy)
    defaults = dict(
        output_dir=str(out),
        per_device_train_batch_size=batch_size,
        max_steps=steps,
        logging_steps=1,
        learning_rate=lr,
        max_grad_norm=1.0,
        bf16=False,
        gradient_checkpointing=False,
        train_sampling_strategy="sequential",
        report_to=[],
        use_cpu=True,
        beta=beta,
        seed=0,
        dataloader_num_workers=0,
        disable_tqdm=True,
        save_strategy="no",
    )
    args = DPOConfig(**(defaults | config))  # ``config`` overrides any default
    data = pairs(n_pairs, completion_len=completion_len)
    return DPOTrainer(model=policy, ref_model=ref, args=args, train_dataset=data, processing_class=tokenizer())


def overhead(out: str | Path, steps: int = 20, pairs: int = 64, repeats: int = 2) -> dict[str, float]:
    """The callback's cost per recorded step for ``pairs`` probe pairs, on the tiny model (one thread).

    Trains the same ``steps``-step run without and with the callback (recording every step, the
    predictors off), best of ``repeats`` each, and returns seconds per step of both, their difference
    per step, and the median seconds per recording spent scoring the pairs and writing the chunk
    (from the callback); and ``predictors_s``, the seconds the predictors take once at the start
    (a one-step run with them on).
    """
    import time

    from flowsim.integrations.trl import trace

    best = {"plain": float("inf"), "traced": float("inf")}
    score = write = float("nan")
    for r in range(repeats):
        for kind in best:
            tr = trainer(Path(out) / f"{kind}-{r}", n_pairs=pairs, steps=steps)
            cb = trace(tr, Path(out) / f"trace-{r}", pairs=pairs, predictors=False) if kind == "traced" else None
            t = time.perf_counter()
            tr.train()
            best[kind] = min(best[kind], (time.perf_counter() - t) / steps)
            if cb is not None:
                score, write = (float(v) for v in torch.tensor(cb.timings).median(dim=0).values)
    tr = trainer(Path(out) / "predictors", n_pairs=pairs, steps=1)
    cb = trace(tr, Path(out) / "trace-predictors", pairs=pairs)
    tr.train()
    return {
        "predictors_s": cb.predictor_info["seconds"],
        "plain_s_per_step": best["plain"],
        "traced_s_per_step": best["traced"],
        "overhead_s_per_step": best["traced"] - best["plain"],
        "score_s": score,
        "write_s": write,
        "pairs": pairs,
        "steps": steps,
    }
