"""A trace's predictors without TRL: the Gram matrix within a memory budget, CHES of padded batches on a
toy causal LM against its definition, the final norm found or not, and the trace folder's predictors file
(written atomically, checked when read, its columns in ``flowsim trace``'s rows; an old folder without it
gives NaN columns).  The TRL callback end to end: tests/integration/test_trace_predictors.py."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from flowsim.integrations import predictors as pr  # noqa: E402
from flowsim.integrations.folder import REFERENCE_STEP, TraceError, TraceWriter, read_predictors, read_trace  # noqa: E402
from flowsim.model.probes import START_PROBES  # noqa: E402

torch.set_num_threads(1)


# -- the Gram matrix ------------------------------------------------------------------------------


@pytest.mark.parametrize("fits", [1, 2, 3, 7, 10])
def test_gram_within_a_budget_equals_the_stored_one(fits):
    g = torch.as_tensor(np.random.default_rng(0).normal(size=(7, 5)))
    calls = []

    def grad(s):
        calls.append(s)
        return g[s]

    k, how = pr.gram(grad, 7, 5, memory=fits * 8 * 5)
    np.testing.assert_allclose(k, (g @ g.T).numpy(), rtol=1e-13)
    block = min(fits, 7)
    assert how["block"] == block and how["mode"] == ("stored" if block == 7 else "streamed")
    # each block once, then every later gradient again: 7 + sum over blocks of the gradients after them
    assert how["gradients"] == len(calls) == 7 + sum(max(0, 7 - hi) for hi in range(block, 7 + block, block))


# -- hidden states of a toy causal LM -------------------------------------------------------------


class Toy(torch.nn.Module):
    """A causal 'LM' with transformers' interface: hidden_states[-1] = norm(running mean of the attended embeddings)."""

    def __init__(self, vocab=7, d=3, where="norm"):
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.Embedding(vocab, d, dtype=torch.float64)
        self.decoder = torch.nn.Module()
        setattr(self.decoder, where, torch.nn.LayerNorm(d, dtype=torch.float64))
        self.where = where

    def get_decoder(self):
        return self.decoder

    def forward(self, input_ids, attention_mask=None, use_cache=None, output_hidden_states=False):
        e = self.embed(input_ids)
        m = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        m = m.to(e.dtype)[..., None]  # padding is not attended to
        pre = (e * m).cumsum(1) / m.cumsum(1).clamp(min=1)
        return SimpleNamespace(hidden_states=(e, getattr(self.decoder, self.where)(pre)))

    def states(self, ids):
        """(post, pre) of one unpadded sequence, (L, d) each."""
        with torch.no_grad():
            out = self(torch.tensor([ids]))
        e = self.embed(torch.tensor([ids]))
        pre = e.cumsum(1) / torch.arange(1, len(ids) + 1, dtype=e.dtype)[:, None]
        return out.hidden_states[-1][0].numpy(), pre[0].detach().numpy()


PAIRS = [([1, 2], [3, 4, 5], [6]), ([2], [5, 5], [4, 6, 1, 3]), ([3, 1, 4], [2], [2, 3])]  # (x, y_w, y_l)


def collated(pairs, side="right"):
    """TRL's collated batch of the pairs: chosen rows then rejected rows, padded with 0 on ``side``."""
    seqs = [x + y for x, y, _ in pairs] + [x + y for x, _, y in pairs]
    comp = [[0] * len(x) + [1] * len(y) for x, y, _ in pairs] + [[0] * len(x) + [1] * len(y) for x, _, y in pairs]
    width = max(map(len, seqs))

    def pad(rows):
        fill = [[0] * (width - len(r)) for r in rows]
        return torch.tensor([r + f if side == "right" else f + r for r, f in zip(rows, fill, strict=True)])

    return {"input_ids": pad(seqs), "attention_mask": pad([[1] * len(s) for s in seqs]), "completion_mask": pad(comp)}


def by_definition(model, pairs):
    rows = []
    for x, yw, yl in pairs:
        (hw, pw), (hl, pl) = model.states(x + yw), model.states(x + yl)
        p, lw, ll = len(x), len(yw), len(yl)
        row = {}
        for suffix, (a, b) in (("", (hw, hl)), ("_pre", (pw, pl))):
            sp, sm = a[p - 1 : p - 1 + lw].sum(0), b[p - 1 : p - 1 + ll].sum(0)
            row["ches" + suffix], row["ches_ln" + suffix] = sp @ sm - sp @ sp, sp @ sm / (lw * ll) - sp @ sp / lw**2
        row["hidden_ip"] = hw[-1] @ hl[-1]
        rows.append(row)
    return pd.DataFrame(rows)


@pytest.mark.parametrize("side", ["right", "left"])
def test_ches_of_a_padded_batch_equals_its_definition(side):
    model = Toy()
    norm, where = pr.final_norm(model)
    assert norm is model.decoder.norm and where == "get_decoder().norm (LayerNorm)"
    batches = [collated(PAIRS[:2], side), collated(PAIRS[2:], side)]
    got, note = pr.hidden_columns(model, batches, norm)
    assert note == ""
    want = by_definition(model, PAIRS)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-12, err_msg=k)
    text = pr.text_columns(batches)
    assert text["pair_edit_distance"].tolist() == [3.0, 4.0, 1.0] and text["token_overlap"].tolist() == [0, 0, 0.5]


def test_without_a_final_norm_the_pre_columns_are_nan_with_the_reason():
    model = Toy(where="ln_mystery")
    norm, why = pr.final_norm(model)
    assert norm is None and why.startswith("no final norm found on Toy")
    got, note = pr.hidden_columns(model, [collated(PAIRS)], norm, why)
    assert note == why and np.isnan(got["ches_pre"]).all() and np.isnan(got["ches_ln_pre"]).all()
    np.testing.assert_allclose(got["ches"], by_definition(model, PAIRS)["ches"], rtol=1e-12)
    wrong = Toy()
    wrong.decoder.norm = torch.nn.LayerNorm(3, dtype=torch.float64)  # found, but not the module giving the state
    wrong.where = "other"
    wrong.decoder.other = torch.nn.Identity()
    got, note = pr.hidden_columns(wrong, [collated(PAIRS)], pr.final_norm(wrong)[0])
    assert "does not give hidden_states[-1]" in note and np.isnan(got["ches_pre"]).all()


# -- the trace folder -----------------------------------------------------------------------------


def _spec(n):
    return {
        "format": "flowsim-trace/1",
        "model": "toy",
        "beta": 0.1,
        "loss_type": ["sigmoid"],
        "probe_seed": 0,
        "probe_index": list(range(n)),
        "every": 1,
        "train_rows": n,
    }


def _trace(out, n=3, steps=2, predictors=True, finish=True, step=0, lr=0.5):
    w = TraceWriter(out, _spec(n))
    w.open(0)
    w.write(REFERENCE_STEP, "reference", np.arange(n), np.full((n, 2), -5.0))
    logp = np.stack([np.full((n, 2), -5.0) + 0.1 * s * np.arange(1, n + 1)[:, None] for s in range(steps + 1)])
    for s in range(steps + 1):
        w.write(s, "policy", np.arange(n), logp[s])
    df = pd.DataFrame({"probe": np.arange(n), "index": np.arange(n)})
    for j, k in enumerate(pr.TRACE_PREDICTORS):
        df[k] = np.arange(n) + 10.0 * j
    if predictors:
        data = df.to_csv(index=False, float_format="%.17g").encode()
        w.write_predictors(data, n, {"step": step, "loss": "dpo"})
    if finish:
        w.finish({"history": [], "training": {"optim": "sgd", "first_step_lr": lr, "first_step_from": 0}})
    else:
        w.close()
    return df, logp


@pytest.mark.parametrize("finish", [True, False])
def test_the_predictors_reach_the_rows(tmp_path, finish):
    from flowsim.app.trace import trace_rows

    want, logp = _trace(tmp_path / "run", finish=finish)
    got, record = read_predictors(tmp_path / "run")
    assert record["step"] == 0 and record["rows"] == 3 and (tmp_path / "run" / "predictors.csv").exists() == finish
    rows = trace_rows(*read_trace(tmp_path / "run"), got, record)
    for k in pr.TRACE_PREDICTORS:
        np.testing.assert_array_equal(rows[k], want[k], err_msg=k)
    np.testing.assert_allclose(rows["dlogpw_first"], (logp[1, :, 0] - logp[0, :, 0]) / 0.5 if finish else np.nan)
    assert rows["top_other_0"].isna().all() and rows["top_other_gain"].isna().all()


def test_an_old_trace_without_predictors_gives_nan_columns(tmp_path):
    from flowsim.app.trace import trace_rows

    _trace(tmp_path / "run", predictors=False)
    assert read_predictors(tmp_path / "run") == (None, {})
    rows = trace_rows(*read_trace(tmp_path / "run"), *read_predictors(tmp_path / "run"))
    assert set(START_PROBES) <= set(rows.columns)
    assert rows[[c for c in START_PROBES if c != "dlogpw_first"]].isna().all().all()
    assert rows["dlogpw_first"].notna().all()  # measured from the records, no predictors needed


def test_predictors_of_another_step_are_not_used(tmp_path):
    from flowsim.app.trace import trace_rows

    _trace(tmp_path / "run", step=5)
    rows = trace_rows(*read_trace(tmp_path / "run"), *read_predictors(tmp_path / "run"))
    assert rows["ches"].isna().all()


def test_damaged_predictors_are_one_line(tmp_path):
    _trace(tmp_path / "run")
    path = tmp_path / "run" / "predictors.csv"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(TraceError, match=r"predictors.csv does not match its record in meta.json"):
        read_predictors(tmp_path / "run")
    path.unlink()
    with pytest.raises(TraceError, match="disagree"):
        read_predictors(tmp_path / "run")
    _trace(tmp_path / "crashed", finish=False)
    record = tmp_path / "crashed" / ".partial" / "predictors.json"
    record.write_text(json.dumps(json.loads(record.read_text()) | {"sha256": "0" * 64}))
    with pytest.raises(TraceError, match=r"predictors.csv is damaged \(its sha256 differs"):
        read_predictors(tmp_path / "crashed")
