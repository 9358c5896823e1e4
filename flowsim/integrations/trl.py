"""Record a TRL ``DPOTrainer`` run pair by pair, for ``flowsim trace``.

TRL logs only batch means (``logps/chosen``, ``rewards/chosen``, ... in ``trainer_state.json``).
:func:`trace` adds a callback that, for a probe set of training pairs (default: up to 64,
drawn with a seed), records every ``every`` optimiser steps each pair's summed log-probabilities
log pi(y_w|x) and log pi(y_l|x) under the policy -- and once under the reference -- exactly as
the trainer computes them: the pairs of TRL's own tokenised ``train_dataset`` (prompt, EOS
appended, truncation as configured) are padded by ``trainer.data_collator`` and scored by the
trainer's public ``compute_ref_log_probs(model, batch)``, the same masked sum of per-token
log-probs its loss uses.  The model is put in eval mode while it is scored (no dropout).

Steps: the record at step s is the policy after s optimiser steps (s = 0: the start).  TRL's
``log_history`` entry at step t is computed in step t's forward pass, from the parameters after
step t - 1: it is the mean of the record at s = t - 1 over step t's batch.

Predictors: at the start of the traced training (the first recorded step, before the first
optimiser step), the callback also computes each probe pair's predictors of displacement
(:mod:`flowsim.integrations.predictors`: CHES from the model's hidden states, the gradient
entanglement and first-order rates from per-sequence gradients over the trainable parameters,
edit distance and token overlap of TRL's completion ids) and writes them to ``predictors.csv``;
``predictors=False`` skips them, ``memory`` bounds the bytes of gradients held at once.

Usage (two lines in a training script)::

    from flowsim.integrations.trl import trace
    trace(trainer, "runs/my-dpo-trace")          # before trainer.train()

then ``flowsim trace runs/my-dpo-trace``.  The folder is written through flowsim's run-folder
store (:mod:`flowsim.integrations.folder`): a crash keeps every recorded step, and a training
resumed from a checkpoint (``trainer.train(resume_from_checkpoint=...)``) with the same call
drops the steps after its checkpoint and records them again, never twice.  Only the main
process records (``state.is_world_process_zero``).
"""

from __future__ import annotations

import logging
import os
import time
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flowsim._validation import check_int
from flowsim.integrations.folder import FORMAT, REFERENCE_STEP, TraceError, TraceWriter
from flowsim.integrations.losses import flowsim_loss

#: The one line shown when the optional extra is missing.
INSTALL_HINT = 'flowsim.integrations.trl needs TRL and transformers: pip install -e ".[trl]"'

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")  # recording never needs the Hub
try:
    import torch
    import trl
    from transformers import TrainerCallback

    from flowsim.integrations import predictors as pr  # torch
except ModuleNotFoundError:
    raise ModuleNotFoundError(INSTALL_HINT) from None

LOG = logging.getLogger(__name__)
#: log_history keys kept in meta.json (the batch means the per-pair records can be checked against).
HISTORY_KEYS = (
    "logps/chosen",
    "logps/rejected",
    "rewards/chosen",
    "rewards/rejected",
    "rewards/margins",
    "rewards/accuracies",
    "loss",
    "learning_rate",
)


def probe_indices(n_rows: int, pairs: int, seed: int) -> np.ndarray:
    """Up to ``pairs`` distinct rows of a training set of ``n_rows``, drawn with ``seed``, sorted."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_rows, size=min(pairs, n_rows), replace=False))


class FlowsimTraceCallback(TrainerCallback):
    """The callback :func:`trace` adds (see the module docstring).

    ``timings`` holds, per recording, the seconds spent scoring the probe pairs and writing the chunk;
    ``predictor_info`` how the predictors were computed (None until they are).
    """

    def __init__(
        self,
        trainer,
        out: str | Path,
        pairs: int = 64,
        every: int = 1,
        seed: int = 0,
        batch_size: int = 64,
        predictors: bool = True,
        memory: int = pr.MEMORY,
    ) -> None:
        self.trainer, self.out = trainer, Path(out)
        self.pairs, self.every = check_int("pairs", pairs, 1), check_int("every", every, 1)
        self.seed, self.batch_size = check_int("seed", seed, 0), check_int("batch_size", batch_size, 1)
        self.writer: TraceWriter | None = None
        self.index = np.empty(0, dtype=np.int64)
        self.last_step: int | None = None
        self.timings: list[tuple[float, float]] = []
        self._probe: list[dict[str, Any]] | None = None
        self.predictors, self.memory = bool(predictors), check_int("memory", memory, 1)
        self.predictor_info: dict[str, Any] | None = None
        self.first_lr: float | None = None

    # -- what is recorded --------------------------------------------------------------

    def _batches(self) -> list[dict[str, Any]]:
        """The probe pairs padded by the trainer's collator, on its device: made once (they never change)."""
        if self._probe is None:
            tr, dev = self.trainer, self.trainer.accelerator.device
            self._probe = []
            for lo in range(0, len(self.index), self.batch_size):
                rows = [tr.train_dataset[int(i)] for i in self.index[lo : lo + self.batch_size]]
                batch = tr.data_collator(rows)
                self._probe.append({k: v.to(dev) if isinstance(v, torch.Tensor) else v for k, v in batch.items()})
        return self._probe

    def _score(self, model, batch, policy: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """TRL's summed log-probs of the batch's pairs under ``model`` (eval mode while scored)."""
        tr = self.trainer
        swap = policy and tr.ref_model is None  # PEFT without a reference: TRL would score the base model
        saved, was = tr.ref_model, model.training
        model.eval()
        try:
            if swap:
                tr.ref_model = model
            return tr.compute_ref_log_probs(model, batch)
        finally:
            tr.ref_model = saved
            model.train(was)

    def log_probs(self, what: str) -> np.ndarray:
        """(n, 2) log pi(y_w|x), log pi(y_l|x) of the probe pairs under the policy or the reference."""
        tr, out = self.trainer, []
        for batch in self._batches():
            if what == "reference" and "ref_chosen_logps" in batch:  # precompute_ref_log_probs=True
                w, r = batch["ref_chosen_logps"], batch["ref_rejected_logps"]
            elif what == "reference":
                w, r = self._score(tr.ref_model if tr.ref_model is not None else tr.model, batch, policy=False)
            else:
                w, r = self._score(tr.model, batch, policy=True)
            out.append(torch.stack([w, r], -1).detach().double().cpu().numpy())
        return np.concatenate(out)

    def record(self, step: int) -> np.ndarray | None:
        """Record the policy at ``step`` and return its log-probs (a second call at the same step does nothing)."""
        if self.writer is None or step == self.last_step:
            return None
        t = time.perf_counter()
        logp = self.log_probs("policy")
        scored = time.perf_counter()
        self.writer.write(step, "policy", self.index, logp)
        self.timings.append((scored - t, time.perf_counter() - scored))
        self.last_step = step
        return logp

    # -- the predictors of displacement -----------------------------------------------------

    @staticmethod
    def sequence_log_probs(model, batch: dict[str, Any]) -> torch.Tensor:
        """log pi(y|x) of a collated batch's rows, with gradients: TRL's own masked sum (its loss's recipe)."""
        labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)
        per_token = model(**pr.model_inputs(batch), labels=labels, fused_lm_head=True).log_probs
        return per_token[:, -(batch["completion_mask"].shape[1] - 1) :].sum(dim=1)

    def compute_predictors(self, logp: np.ndarray, ref: np.ndarray) -> tuple[pd.DataFrame, dict[str, Any]]:
        """Every predictor of :data:`~flowsim.integrations.predictors.TRACE_PREDICTORS` of the probe pairs.

        ``logp``, ``ref`` (n, 2): the policy's and the reference's log-probs as recorded at this step (the
        rates' a_j, b_j are the trainer's loss's gradient there, from flowsim's loss of the same formula).
        """
        tr, batches = self.trainer, self._batches()
        model = tr.model
        t = time.perf_counter()
        norm, where = pr.final_norm(model)
        was = model.training
        model.eval()
        try:
            hidden, note = pr.hidden_columns(model, batches, norm, "" if norm is not None else where)
        finally:
            model.train(was)
        info: dict[str, Any] = {"final_norm": where if norm is not None else None, "hidden_note": note}
        loss, why = flowsim_loss(self.spec())
        n = len(logp)
        ab = np.full((n, 2), np.nan) if loss is None else -np.asarray(loss.grad(logp - ref, ref), dtype=float)
        info["loss"] = loss.kind if loss is not None else None
        info["rates_note"] = why
        info["hidden_seconds"] = time.perf_counter() - t
        check = self._scores_agree(model, batches, logp)
        if check:
            grads = {k: np.full(n, np.nan) for k in ("gw_sq", "gw_gl", "ent_own", "ent_cross", "dlogpw_dt0")}
            info["gradient_note"] = check
        else:
            grads, how = pr.gradient_columns(model, batches, self.sequence_log_probs, ab, self.memory)
            info["gram"] = how
        cols = hidden | grads | pr.text_columns(batches)
        for k, v in info.items():
            if k.endswith("_note") and v:
                LOG.warning("flowsim trace predictors: %s: %s", k.replace("_", " "), v)
        df = pd.DataFrame({"probe": np.arange(n), "index": self.index, **{k: cols[k] for k in pr.TRACE_PREDICTORS}})
        return df, info | {"seconds": time.perf_counter() - t}

    def _scores_agree(self, model, batches, logp: np.ndarray) -> str:
        """'' if :meth:`sequence_log_probs` gives the recorded log-probs (the gradients are of those), else why not."""
        was = model.training
        model.eval()
        try:
            with torch.no_grad():
                mine = np.concatenate(
                    [self.sequence_log_probs(model, b).double().cpu().numpy().reshape(2, -1).T for b in batches]
                )
        finally:
            model.train(was)
        if np.allclose(mine, logp, rtol=1e-5, atol=1e-5):
            return ""
        return "the log-probs with gradients differ from TRL's (ld_alpha? a custom model call?): no gradient terms"

    def write_predictors(self, step: int, logp: np.ndarray, ref: np.ndarray) -> None:
        """Compute and write the predictors at ``step`` (unless the folder holds them: a resumed training)."""
        if not self.predictors or self.writer is None or self.writer.recorded_predictors() is not None:
            return
        df, info = self.compute_predictors(logp, ref)
        self.predictor_info = info
        data = df.to_csv(index=False, float_format="%.17g").encode()
        self.writer.write_predictors(data, len(df), {"step": int(step), **info})

    def spec(self) -> dict[str, Any]:
        """What identifies the trace: a resumed training must give the same."""
        import transformers

        tr, model = self.trainer, self.trainer.model
        reference = (
            "precomputed"
            if tr.precompute_ref_logps
            else "ref_model"
            if tr.ref_model is not None
            else "adapter disabled"
        )
        return {
            "format": FORMAT,
            "model": str(getattr(model.config, "_name_or_path", "") or type(model).__name__),
            "model_class": type(model).__name__,
            "dtype": str(next(model.parameters()).dtype),
            "trl": trl.__version__,
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "beta": float(tr.beta),
            "loss_type": list(tr.loss_types),
            "loss_weights": [float(w) for w in tr.loss_weights],
            "ld_alpha": tr.ld_alpha,
            "f_divergence_type": str(tr.f_divergence_type),
            "label_smoothing": float(tr.label_smoothing),
            "use_weighting": bool(tr.use_weighting),
            "reference": reference,
            "train_rows": len(tr.train_dataset),
            "probe_seed": self.seed,
            "probe_index": self.index.tolist(),
            "every": self.every,
        }

    # -- the trainer's events ------------------------------------------------------------

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        self.index = probe_indices(len(self.trainer.train_dataset), self.pairs, self.seed)
        self._probe = None
        writer = TraceWriter(self.out, self.spec())
        writer.open(state.global_step)
        self.writer = writer
        weakref.finalize(self, writer.close)  # a failed train() in this process releases the lock when dropped
        ref = self.log_probs("reference")
        kept = writer.recorded_reference()
        if kept is not None and not np.allclose(kept, ref, rtol=1e-5, atol=1e-6):
            self.close()
            raise TraceError(
                f"{self.out}: the reference's log-probs differ from the ones recorded there "
                "(another model or data?); trace this training into another folder"
            )
        if kept is None:
            writer.write(REFERENCE_STEP, "reference", self.index, ref)
        logp = self.record(state.global_step)
        if logp is not None:
            self.write_predictors(state.global_step, logp, ref)

    def on_optimizer_step(self, args, state, control, **kwargs):
        if self.first_lr is None and self.writer is not None:  # before the scheduler moves it: the step's own lr
            self.first_lr = float(self.trainer.optimizer.param_groups[0]["lr"])
            self.first_lr_step = int(state.global_step)

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step % self.every == 0:
            self.record(state.global_step)

    def on_train_end(self, args, state, control, **kwargs):
        if self.writer is None:
            return
        self.record(state.global_step)
        history = [
            {"step": h["step"], **{k: h[k] for k in HISTORY_KEYS if k in h}}
            for h in state.log_history
            if any(k in h for k in HISTORY_KEYS[:4])
        ]
        training = {
            "learning_rate": args.learning_rate,
            "optim": str(getattr(args.optim, "value", args.optim)),
            "lr_scheduler_type": str(getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type)),
            "max_grad_norm": args.max_grad_norm,
            "per_device_train_batch_size": args.per_device_train_batch_size,
            "gradient_accumulation_steps": args.gradient_accumulation_steps,
            "logging_steps": args.logging_steps,
            "global_step": state.global_step,
            "seed": args.seed,
            "seconds_per_recording": float(np.median(np.sum(self.timings, axis=1))) if self.timings else None,
            # the lr of the first optimiser step after the start this process traced (dlogpw_first)
            "first_step_lr": self.first_lr,
            "first_step_from": getattr(self, "first_lr_step", None),
        }
        self.writer.finish({"history": history, "training": training})
        self.writer = None

    def close(self) -> None:
        """Release the folder's lock after a failed ``trainer.train()`` in this process (a crash releases it)."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def trace(
    trainer,
    out: str | Path,
    *,
    pairs: int = 64,
    every: int = 1,
    seed: int = 0,
    batch_size: int = 64,
    predictors: bool = True,
    memory: int = pr.MEMORY,
) -> FlowsimTraceCallback:
    """Record ``trainer``'s run pair by pair into the folder ``out`` (see the module docstring).

    Parameters
    ----------
    trainer : trl.DPOTrainer
        The trainer, built; call before ``trainer.train()``.
    out : str or pathlib.Path
        The trace folder: new or empty (or the same folder again, to resume a training).
    pairs : int, default 64
        Probe pairs, drawn from the training set with ``seed`` (all of them if it has fewer).
    every : int, default 1
        Record every ``every`` optimiser steps (and always at the first and last step).
    seed : int, default 0
        Seed of the probe draw.
    batch_size : int, default 64
        Probe pairs scored per forward pass.
    predictors : bool, default True
        Compute the probe pairs' predictors of displacement at the start (``predictors.csv``).
    memory : int, default 2**30
        Bytes of per-sequence gradients (float64) held at once for the gradient predictors: all
        2 x pairs gradients are stored when they fit, else their inner products are accumulated
        block by block, computing gradients again (exact, slower).

    Returns
    -------
    FlowsimTraceCallback
        The callback, added to the trainer.
    """
    cb = FlowsimTraceCallback(
        trainer, out, pairs=pairs, every=every, seed=seed, batch_size=batch_size, predictors=predictors, memory=memory
    )
    trainer.add_callback(cb)
    return cb


__all__ = ["INSTALL_HINT", "FlowsimTraceCallback", "probe_indices", "trace"]
