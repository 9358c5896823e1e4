"""The TRL callback's predictors of displacement against flowsim's own computation from their definitions.

One traced DPO run of a float64 tiny GPT-2 (TRL 1.16, nothing downloaded): 8 probe pairs with completions
of 1-4 words + EOS (so TRL pads them), one full-batch SGD step.  CHES and hidden_ip from hidden states
computed here on each unpadded sequence (the state before ln_f read at the last block's output, not by the
callback's hook); ent_own and ent_own + ent_cross against the measured change of log pi(y_w) under one
gradient step of lr 1e-7 (float64 scoring, rtol 1e-4) on the pair's own term and on the whole probe set's
mean DPO loss; edit distances from TRL's tokenised dataset.  Marked slow (tests/integration): importing TRL
and transformers alone takes ~10 s.
"""

from __future__ import annotations

import copy
import os

import numpy as np
import pandas as pd
import pytest

from flowsim.model.probes import edit_distance, token_overlap

# one worker imports TRL (~5 s of imports), as tests/integration/test_trl_equivalence.py's
pytestmark = pytest.mark.xdist_group("trl")

N, BETA, LR, RTOL = 8, 0.1, 1e-7, 1e-4


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    pytest.importorskip("trl", reason='the trl extra is not installed (pip install -e ".[trl]")')
    torch = pytest.importorskip("torch")
    from flowsim.integrations import tiny
    from flowsim.integrations.trl import trace

    root = tmp_path_factory.mktemp("trp")
    tr = tiny.trainer(
        root / "train",
        n_pairs=N,
        steps=1,
        batch_size=N,  # one full-batch step on the probe set
        lr=1e-3,
        beta=BETA,
        dtype=torch.float64,
        completion_len=(1, 4),
        optim="sgd",
        lr_scheduler_type="constant",
        max_grad_norm=0.0,
    )
    torch.manual_seed(1)
    with torch.no_grad():  # a reference other than the start: h != 0, so each pair has its own a_j, b_j
        for p in tr.ref_model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    start = copy.deepcopy(tr.model)
    del start.forward  # TRL's fused-head forward is bound to the trainer's model, not to the copy
    cb = trace(tr, root / "trace", pairs=N)
    tr.train()
    return root, tr, cb, start


def _scores(model, rows, grad: bool = False):
    """log pi(y|x) (n, 2) of TRL's tokenised rows in float64, from the logits (not TRL's fused head)."""
    import torch

    out = []
    with torch.set_grad_enabled(grad):
        for r in rows:
            pair = []
            for y in (r["chosen_ids"], r["rejected_ids"]):
                ids = torch.tensor([r["prompt_ids"] + y])
                lp = torch.log_softmax(model(ids).logits[0, :-1].double(), -1)
                p = len(r["prompt_ids"])
                pair.append(lp[torch.arange(p - 1, ids.shape[1] - 1), ids[0, p:]].sum())
            out.append(torch.stack(pair))
    return torch.stack(out)


def _hidden(model, prompt, y):
    """hidden_states[-1] and the last block's output (ln_f's input) of one unpadded sequence, (L, d) each."""
    import torch

    seen = {}
    last = model.transformer.h[-1]
    hook = last.register_forward_hook(lambda m, i, o: seen.update(pre=o[0] if isinstance(o, tuple) else o))
    try:
        with torch.no_grad():
            post = model(torch.tensor([prompt + y]), output_hidden_states=True).hidden_states[-1][0]
    finally:
        hook.remove()
    return post.numpy(), seen["pre"][0].numpy()


def _predictors(root):
    from flowsim.integrations.folder import read_predictors

    df, record = read_predictors(root / "trace")
    return df, record


@pytest.mark.slow
def test_ches_hidden_ip_and_text_columns_by_their_definitions(run):
    root, tr, _cb, start = run
    df, record = _predictors(root)
    assert record["step"] == 0 and record["final_norm"] == "get_decoder().ln_f (LayerNorm)"
    assert record["hidden_note"] == ""
    rows = [tr.train_dataset[int(i)] for i in df["index"]]
    lengths = {len(r["chosen_ids"]) for r in rows} | {len(r["rejected_ids"]) for r in rows}
    assert len(lengths) > 1  # TRL padded the batch
    want = []
    for r in rows:
        p = len(r["prompt_ids"])
        (hw, pw), (hl, pl) = (_hidden(start, r["prompt_ids"], r[k]) for k in ("chosen_ids", "rejected_ids"))
        lw, ll = len(r["chosen_ids"]), len(r["rejected_ids"])
        row = {}
        for suffix, (a, b) in (("", (hw, hl)), ("_pre", (pw, pl))):
            sp, sm = a[p - 1 : p - 1 + lw].sum(0), b[p - 1 : p - 1 + ll].sum(0)  # the positions predicting y
            row["ches" + suffix] = sp @ sm - sp @ sp
            row["ches_ln" + suffix] = sp @ sm / (lw * ll) - sp @ sp / lw**2
        row["hidden_ip"] = hw[-1] @ hl[-1]  # the final token's states (EOS)
        row["pair_edit_distance"] = edit_distance(r["chosen_ids"], r["rejected_ids"])
        row["token_overlap"] = token_overlap(r["chosen_ids"], r["rejected_ids"])
        want.append(row)
    want = pd.DataFrame(want)
    for k in want:
        np.testing.assert_allclose(df[k], want[k], rtol=1e-9, atol=1e-12, err_msg=k)
    assert not np.allclose(df["ches"], df["ches_pre"])  # ln_f changes the scale: both are recorded


@pytest.mark.slow
def test_rates_equal_a_measured_gradient_step(run):
    """ent_own (the pair's own term of the mean loss) and ent_own + ent_cross (the whole probe set) against
    one float64 gradient step of lr 1e-7; and TRL's own SGD step (lr 1e-3, float32 log-probs) in the rows."""
    import torch

    from flowsim.app.trace import trace_rows
    from flowsim.integrations.folder import read_predictors, read_trace

    root, tr, _cb, start = run
    df, record = _predictors(root)
    assert record["gram"]["mode"] == "stored" and record["loss"] == "dpo"
    rows = [tr.train_dataset[int(i)] for i in df["index"]]
    ref = _scores(tr.ref_model, rows).numpy()

    def step(weights):
        model = copy.deepcopy(start)
        lp = _scores(model, rows, grad=True)
        h = lp - torch.as_tensor(ref)
        loss = -(torch.nn.functional.logsigmoid(BETA * (h[:, 0] - h[:, 1])) * torch.as_tensor(weights)).sum() / N
        params = [p for p in model.parameters() if p.requires_grad]
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for p, g in zip(params, grads, strict=True):
                p -= LR * g
        return (_scores(model, rows).numpy()[:, 0] - lp.detach().numpy()[:, 0]) / LR

    measured = step(np.ones(N))
    print("dataset: worst relative difference", np.max(np.abs(df["dlogpw_dt0"] / measured - 1)))
    np.testing.assert_allclose(df["dlogpw_dt0"], measured, rtol=RTOL)
    np.testing.assert_allclose(df["ent_own"] + df["ent_cross"], df["dlogpw_dt0"], rtol=1e-12)
    for i in (0, 3):
        np.testing.assert_allclose(df["ent_own"][i], step(np.eye(N)[i])[i], rtol=RTOL)
    assert (df["ent_cross"].abs() > 1e-3 * df["ent_own"].abs()).any()  # the other pairs do pull
    spec, logps, finished = read_trace(root / "trace")
    trows = trace_rows(spec, logps, finished, *read_predictors(root / "trace"))
    np.testing.assert_allclose(trows["ches"], df["ches"], rtol=0)
    worst = float(np.max(np.abs(trows["dlogpw_first"] / trows["dlogpw_dt0"] - 1)))
    print("TRL's step: worst relative difference", worst)
    assert worst < 0.1, worst  # TRL's own step of lr 1e-3 on the probe set (measured 0.026: second order in lr)
    assert trows["top_other_0"].isna().all() and trows["top_other_gain"].isna().all()


@pytest.mark.slow
def test_streamed_gram_equals_stored(run):
    """Within a budget of 3 gradients, the Gram matrix is accumulated block by block: the same columns."""
    from trl.trainer.utils import add_fused_lm_head

    from flowsim.integrations import predictors as pr
    from flowsim.integrations.folder import read_trace

    root, _tr, cb, start = run
    df, record = _predictors(root)
    model = copy.deepcopy(start)
    add_fused_lm_head(model)  # as TRL does (sequence_log_probs is TRL's recipe)
    batches = cb._batches()
    _, logps, _ = read_trace(root / "trace")
    start_logp = logps[logps["step"] <= 0].sort_values(["step", "probe"])[["logp_w", "logp_l"]].to_numpy()
    h = start_logp[N:] - start_logp[:N]  # policy at step 0 minus the reference (step -1)
    a = BETA / (1 + np.exp(BETA * (h[:, 0] - h[:, 1])))  # DPO: a = -b = beta sigma(-beta margin)
    ab = np.stack([a, -a], -1)
    dim = record["gram"]["parameters"]
    out, how = pr.gradient_columns(model, batches, cb.sequence_log_probs, ab, memory=3 * 8 * dim)
    assert how["mode"] == "streamed" and how["block"] == 3 and how["gradients"] == 16 + 13 + 10 + 7 + 4 + 1
    for k, v in out.items():
        np.testing.assert_allclose(v, df[k], rtol=1e-9, atol=1e-12, err_msg=k)
