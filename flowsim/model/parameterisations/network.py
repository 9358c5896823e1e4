r"""The ``network`` model's hyperparameters: a small causal LM, its synthetic data and its SFT stage.

Unlike the other models, a network is not a :class:`~.base.Policy` of independent starts: the
pairs of a dataset share its parameters, and its start is wherever the SFT stage left it.  This
frozen dataclass only validates and carries the ``[model]`` fields (no torch import), so an
experiment file is checked before anything is trained; the network itself is
:mod:`flowsim.model.network` (torch), trained by :mod:`flowsim.dynamics.training`.

The policy: log pi(y|x) = sum_t log softmax(f(c_t))[y_t] over the response's tokens, where the
context c_t holds the last ``window`` tokens of (x, y_<t) (padded on the left with a pad symbol)
and f is an MLP: embed each context token (``embedding = "learned"``, width ``width``; or
``"one-hot"``, a frozen identity over the vocab + pad), concatenate, ``layers`` hidden layers
(Linear + ``activation``) of width ``width``, then a readout to the ``vocab`` logits (with a
bias if ``readout_bias``).  ``layers = 0`` is a linear readout of the embedded context.

Exact special cases (tests/unit/test_network.py):

* ``layers = 0, embedding = "one-hot", window = 1, prompt_len = 1, response_len = 1,
  readout_bias = false``: the logits of the one prompt are one column of the readout, so the
  network *is* the tabular softmax model ``logits`` with K = vocab;
* ``layers = 0`` with a frozen readout Phi and bias b (``train = "embedding"``): z = b + Phi e(x),
  the log-linear model ``features`` with theta = the prompt's embedding.

``arch = "transformer"`` replaces the MLP by a GPT-2 (``transformers``' ``GPT2LMHeadModel`` built
from a config, nothing downloaded; :mod:`flowsim.model.network.transformer`): ``layers`` blocks of
causal self-attention with ``heads`` heads and an MLP, width ``width``, learned positions over
``context`` tokens, layer norms, an LM head tied to the token embedding if ``tie_embeddings``.  It
reads the whole sequence (x, y_<t) instead of a window; ``window``, ``activation``, ``embedding``
and ``readout_bias`` are the MLP's.  Its exact special case: ``layers = 0`` with an untied head and
``train = "readout"`` is the ``features`` model with the fixed feature phi = LN(wte[x] + wpe[t]);
for one one-token response its GD is the ``logits`` model's GD at lr * |phi|^2
(tests/unit/test_transformer.py).

``pairs = "language"`` draws the pairs from a seeded language (:mod:`flowsim.model.network.language`:
a Markov source over ``word_classes`` word classes, from ``language_seed``; the last token is EOS)
with the similarity controls ``shared_prefix`` and ``same_class``; ``pretrain_steps`` > 0 first
trains the network on that language's next-token loss (``pretrain_tokens`` tokens of text,
full-batch Adam at ``pretrain_lr``; :mod:`flowsim.dynamics.pretraining`), then SFT, then the
preference stage.  ``append_eos`` ends both responses with EOS, counted in log pi(y|x), as TRL does.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import ClassVar

from flowsim._validation import ParamError, check_choice, check_int, check_interval, check_positive
from flowsim.model.network.select import SELECT_CHOICES
from flowsim.model.parameterisations.base import Model
from flowsim.model.probes import PROBE_COLUMNS, START_PROBES

EMBEDDINGS = ("learned", "one-hot")
#: "mlp": :class:`~flowsim.model.network.module.CausalMLP`; "transformer": a GPT-2 (needs transformers).
ARCHS = ("mlp", "transformer")
#: "uniform": :func:`~flowsim.model.network.data.make_pairs`' uniform tokens; "language": drawn from
#: :mod:`flowsim.model.network.language`.
PAIR_SOURCES = ("uniform", "language")
ACTIVATIONS = ("tanh", "relu", "gelu")
TRAINED_PARTS = ("all", "embedding", "readout")
#: "chosen": SFT on y_w (with ``sft_mix`` weight on y_l and a fraction ``sft_noise`` of pairs
#: whose SFT response is y_l); "target": SFT towards the grid point (p_w0, p_l0) for every pair;
#: "none": the initialised network is the start.
SFT_KINDS = ("chosen", "target", "none")
#: Where the ensembles train: "auto" is "cuda" where a GPU is present, else "cpu".
DEVICES = ("cpu", "cuda", "auto")
#: What to run instead of torch when it is missing: the one-line fix.
INSTALL_HINT = 'needs torch, which is not installed: pip install -e ".[nn]"'
#: The same for ``arch = "transformer"``, which needs ``transformers`` (the extra TRL comes in).
TRANSFORMER_HINT = 'needs transformers, which is not installed: pip install -e ".[nn]"'


def torch_available() -> bool:
    """Whether torch can be imported (without importing it)."""
    return importlib.util.find_spec("torch") is not None


def cuda_available() -> bool:
    """Whether torch sees a CUDA GPU (imports torch)."""
    import torch

    return bool(torch.cuda.is_available())


def resolve_device(device: str) -> str:
    """The torch device of a ``device`` key: "auto" is "cuda" where a GPU is present, else "cpu"."""
    if device == "auto":
        return "cuda" if cuda_available() else "cpu"
    return device


def transformers_available() -> bool:
    """Whether transformers can be imported (without importing it)."""
    return importlib.util.find_spec("transformers") is not None


@dataclass(frozen=True)
class Network(Model):
    """A small causal LM with its synthetic preference data and SFT stage; see the module docstring.

    Parameters
    ----------
    arch : {"mlp", "transformer"}
        The network: the MLP over a context window, or a GPT-2 (see the module docstring).
    heads, context : int
        The transformer's attention heads (>= 1; must divide ``width``) and positions (>= 2; must
        hold prompt_len + response_len tokens).
    tie_embeddings : bool
        The transformer's LM head is its token embedding (GPT-2's default); false is needed for
        ``train = "readout"``.
    pairs : {"uniform", "language"}
        Where the pairs come from (see the module docstring).
    word_classes, language_seed : int
        The language's word classes (>= 1; vocab - 1 words share them) and its seed.
    shared_prefix : int
        Language pairs: y_l keeps y_w's first ``shared_prefix`` tokens; the edits come after.
    same_class : bool
        Language pairs: an edited token is replaced by another word of its class (else any word).
    append_eos : bool
        End both responses with EOS (token vocab - 1), counted in log pi(y|x) as TRL counts it.
    pretrain_steps, pretrain_lr, pretrain_tokens : int, float, int
        The pretraining stage on the language's next-token loss (0 steps: none), before SFT.
    vocab, prompt_len, response_len, window : int
        Tokens (>= 3), prompt and response lengths (>= 1) and the context window (>= 1).
    layers, width : int
        Hidden layers (>= 0) and their width (>= 1; also the learned embedding's width).
    activation : {"tanh", "relu", "gelu"}
    embedding : {"learned", "one-hot"}
    readout_bias : bool
    train : {"all", "embedding", "readout"}
        Which parameters the DPO and SFT stages update (the rest stay at their initial values).
    init_seed : int
        torch.manual_seed of the initialisation (torch's default initialisers).
    n_pairs : int
        Preference pairs in the dataset (>= 1; 1 reproduces the single-pair models).
    n_prompts : int
        Distinct prompts (pairs share them round-robin); 0: one per pair.
    token_pool : int
        Responses draw their tokens from the first ``token_pool`` tokens (2..vocab; 0: all):
        fewer means more tokens shared between pairs.
    edit_distance : int
        Positions (1..response_len) where y_l differs from y_w.
    data_seed : int
        numpy seed of the dataset (and of which pairs are noisy in SFT).
    sft, sft_steps, sft_lr : str, int, float
        The SFT stage (see :data:`SFT_KINDS`): full-batch Adam with lr ``sft_lr`` for ``sft_steps``.
    sft_mix : float
        Weight in [0, 1] of y_l's negative log-likelihood in "chosen" SFT (0: y_w only).
    sft_noise : float
        Fraction in [0, 1] of pairs whose "chosen" SFT response is y_l (flipped labels).
    batch_size : int
        Pairs per DPO step (0: the whole dataset); mini-batches cycle through a seeded permutation.
    batch_seed : int
        numpy seed of the mini-batches' order.
    pool : int
        Razin et al.'s quantile protocol (:mod:`flowsim.model.network.select`): draw a pool of
        ``pool`` pairs (>= n_pairs; their edit distances 1 .. ``edit_distance`` in equal shares),
        pretrain and SFT on it, then train the preference stage on the ``n_pairs`` pairs ``select``
        keeps; 0: no pool (the dataset is the ``n_pairs`` pairs drawn).
    select : str
        Which pool pairs the preference stage trains on (one of
        :data:`~flowsim.model.network.select.SELECT_CHOICES`): ``"<p>_top"`` / ``"<p>_bottom"``
        the highest / lowest of predictor p (ches, ches_ln, hidden_ip) at the DPO start,
        ``"pair_edit_distance_small"`` / ``"_large"``, ``"random"`` the control; ``"none"``
        exactly when ``pool`` is 0.
    path_points : int
        Points of each pair's trajectory kept in its row's ``path`` column (0: none): the steps
        round(linspace(0, steps, path_points)), each as [t, log pi(y_w), log pi(y_l)].
    device : {"cpu", "cuda", "auto"}
        Where the network engine trains its ensembles (SFT and the preference stage; pretraining,
        once per chunk, and the one-at-a-time reference loop stay on the CPU): "auto" is "cuda"
        where torch sees a GPU, else "cpu".  "cuda" without one is refused.  The rows do not depend
        on it beyond rounding (GPU kernels sum in other orders).
    """

    kind: ClassVar[str] = "network"
    normalised: ClassVar[bool] = True
    #: Where the field at the starts is: not a Policy to bind at a start, so each row records it
    #: itself -- (dp_w/dt, dp_l/dt at t = 0 under gradient flow, |grad_theta L|), these columns.
    field_columns: ClassVar[tuple[str, str, str] | None] = ("dp1_dt_0", "dp2_dt_0", "grad_norm_0")
    #: Not a Policy of independent starts: the pairs of a dataset share the parameters.
    policy_of_starts: ClassVar[bool] = False
    #: The grid is read only by sft = "target": without one, one training per combination.
    grid_optional: ClassVar[bool] = True
    #: The per-pair predictors its rows record (:mod:`flowsim.model.network.probes`): all of them.
    probe_columns: ClassVar[tuple[str, ...]] = PROBE_COLUMNS
    #: Columns a network row adds after the flows.csv columns: the pair, the dataset's means, the SFT
    #: objective and target, the field at the start, the trajectory (:mod:`flowsim.dynamics.engines.network`),
    #: then the per-pair predictors (:attr:`probe_columns`; ``top_other_gain`` is in the record's columns).
    extra_columns: ClassVar[tuple[str, ...]] = (
        "pair",
        "logp_w0",
        "logp_l0",
        "logp_w_final",
        "logp_l_final",
        "p1_0_mean",
        "p2_0_mean",
        "p1_final_mean",
        "p2_final_mean",
        "displaced_frac",
        "loss_0_mean",
        "loss_final_mean",
        "train_status",
        "sft_objective",
        "target_w",
        "target_l",
        "dp1_dt_0",
        "dp2_dt_0",
        "grad_norm_0",
        "path",
        *START_PROBES,
    )
    arch: str = "mlp"
    heads: int = 2
    context: int = 16
    tie_embeddings: bool = True
    pairs: str = "uniform"
    word_classes: int = 3
    language_seed: int = 0
    shared_prefix: int = 0
    same_class: bool = False
    append_eos: bool = False
    pretrain_steps: int = 0
    pretrain_lr: float = 0.01
    pretrain_tokens: int = 2048
    vocab: int = 12
    prompt_len: int = 2
    response_len: int = 3
    window: int = 3
    layers: int = 1
    width: int = 16
    activation: str = "tanh"
    embedding: str = "learned"
    readout_bias: bool = True
    train: str = "all"
    init_seed: int = 0
    n_pairs: int = 1
    n_prompts: int = 0
    token_pool: int = 0
    edit_distance: int = 1
    data_seed: int = 0
    sft: str = "chosen"
    sft_steps: int = 50
    sft_lr: float = 0.01
    sft_mix: float = 0.0
    sft_noise: float = 0.0
    batch_size: int = 0
    batch_seed: int = 0
    path_points: int = 0
    device: str = "cpu"
    pool: int = 0
    select: str = "none"

    def __post_init__(self) -> None:
        if not torch_available():
            raise ParamError("kind", INSTALL_HINT, self.kind)
        set_ = object.__setattr__
        for name, low in (
            ("heads", 1),
            ("context", 2),
            ("vocab", 3),
            ("prompt_len", 1),
            ("response_len", 1),
            ("window", 1),
            ("layers", 0),
            ("word_classes", 1),
            ("language_seed", 0),
            ("shared_prefix", 0),
            ("pretrain_steps", 0),
            ("pretrain_tokens", 2),
            ("width", 1),
            ("init_seed", 0),
            ("n_pairs", 1),
            ("n_prompts", 0),
            ("token_pool", 0),
            ("edit_distance", 1),
            ("data_seed", 0),
            ("sft_steps", 0),
            ("batch_size", 0),
            ("batch_seed", 0),
            ("path_points", 0),
            ("pool", 0),
        ):
            set_(self, name, check_int(name, getattr(self, name), low))
        set_(self, "arch", check_choice("arch", self.arch, ARCHS))
        if self.arch == "transformer" and not transformers_available():
            raise ParamError("arch", TRANSFORMER_HINT, self.arch)
        set_(self, "pairs", check_choice("pairs", self.pairs, PAIR_SOURCES))
        set_(self, "activation", check_choice("activation", self.activation, ACTIVATIONS))
        set_(self, "embedding", check_choice("embedding", self.embedding, EMBEDDINGS))
        set_(self, "train", check_choice("train", self.train, TRAINED_PARTS))
        set_(self, "sft", check_choice("sft", self.sft, SFT_KINDS))
        set_(self, "device", check_choice("device", self.device, DEVICES))
        if self.device == "cuda" and not cuda_available():
            raise ParamError("device", 'needs a GPU that torch can use; none here (use "cpu" or "auto")', "cuda")
        set_(self, "select", check_choice("select", self.select, SELECT_CHOICES))
        for name in ("readout_bias", "tie_embeddings", "same_class", "append_eos"):
            if not isinstance(getattr(self, name), bool):
                raise ParamError(name, "must be true or false", getattr(self, name))
        set_(self, "sft_lr", check_positive("sft_lr", self.sft_lr))
        set_(self, "pretrain_lr", check_positive("pretrain_lr", self.pretrain_lr))
        set_(self, "sft_mix", check_interval("sft_mix", self.sft_mix, 0.0, 1.0, closed="both"))
        set_(self, "sft_noise", check_interval("sft_noise", self.sft_noise, 0.0, 1.0, closed="both"))

    def check_relations(self) -> Network:
        """The rules between fields (checked per swept combination, since each field is validated
        alone against the others' defaults); returns self."""
        if self.edit_distance > self.response_len:
            raise ParamError("edit_distance", f"must be <= response_len = {self.response_len}", self.edit_distance)
        if self.token_pool == 1 or self.token_pool > self.vocab:
            raise ParamError("token_pool", f"must be 0 (all) or in 2..vocab = {self.vocab}", self.token_pool)
        if self.n_prompts > self.n_pairs:
            raise ParamError("n_prompts", f"must be <= n_pairs = {self.n_pairs} (0: one per pair)", self.n_prompts)
        self._check_prompts()
        if self.batch_size > self.n_pairs:
            raise ParamError("batch_size", f"must be <= n_pairs = {self.n_pairs} (0: all)", self.batch_size)
        self._check_pool()
        if self.arch == "transformer":
            self._check_transformer()
        if self.pairs == "language" or self.pretrain_steps:
            self._check_language()
        elif self.shared_prefix or self.same_class:
            key = "shared_prefix" if self.shared_prefix else "same_class"
            raise ParamError(key, 'is a control of pairs = "language"', getattr(self, key))
        return self

    def rows_per_start(self) -> int:
        """A row per pair of the dataset."""
        return self.n_pairs

    @classmethod
    def check_sweep(cls, params: dict, dynamics: tuple[str, ...], grid_points: int | None) -> None:
        """Each combination's field relations; no flow (a small-lr gd is its stand-in); the grid only
        with ``sft = "target"`` (its points are the SFT targets), and then required."""
        super().check_sweep(params, dynamics, grid_points)
        if "flow" in dynamics:
            raise ParamError(
                "dynamics.kind",
                "has no network version: train with an optimiser (gd, momentum, "
                "adam, adamw); a small-lr gd is the flow's stand-in",
                "flow",
            )
        targets = "target" in params.get("sft", ("chosen",))
        if grid_points is None and targets:
            raise ParamError(
                "grid", 'is required with model.sft = "target": its points are the SFT targets (p_w0, p_l0)', None
            )
        if grid_points is not None and grid_points > 1 and not targets:
            raise ParamError(
                "grid",
                'is read only by model.sft = "target" (its points are the SFT targets); leave '
                "it out, or replicate trainings with model.init_seed / model.data_seed lists",
                f"{grid_points} points",
            )

    @classmethod
    def prepare_workers(cls) -> None:
        """Import torch and what its optimisers import on first use (torch._dynamo), single-threaded.

        Called in the sweep's own process before its workers fork, so that they inherit the modules
        instead of each paying for them: 2.6-3.8 s for ``import torch`` and 2.5-3.1 s for the first
        optimiser step, measured on the shared 2-core machine under load.
        """
        import torch

        torch.set_num_threads(1)  # before any torch op: forked children must not inherit a thread pool
        p = torch.zeros(1, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.SGD([p], lr=1.0)
        p.sum().backward()
        opt.step()

    def _check_prompts(self) -> None:
        """Every prompt a dataset draws is distinct (flowsim.model.network.data): there must be enough.

        A pool's pairs are drawn in shares of at most ceil(pool / edit_distance), each with its own prompts.
        """
        words = self.vocab - 1 if self.pairs == "language" else self.vocab  # the language's words: all but EOS
        share = -(-self.pool // max(self.edit_distance, 1)) if self.pool else 0
        key = "n_prompts" if self.n_prompts else "pool" if share > self.n_pairs else "n_pairs"
        # (a power of at most 64: past it there are more prompts than any dataset has pairs)
        if max(self.n_prompts or self.n_pairs, share) > words ** min(self.prompt_len, 64):
            rule = f"must draw at most {words}^prompt_len = {words**self.prompt_len} distinct prompts"
            if key == "pool":
                rule += f" (its largest share, of ceil(pool / edit_distance) = {share} pairs)"
            raise ParamError(key, rule, getattr(self, key))

    def _check_pool(self) -> None:
        if self.pool and self.pool < self.n_pairs:
            raise ParamError("pool", f"must be 0 (no pool) or >= n_pairs = {self.n_pairs}", self.pool)
        if self.pool and self.select == "none":
            raise ParamError("select", f"must name the pairs kept from the pool (pool = {self.pool})", self.select)
        if not self.pool and self.select != "none":
            raise ParamError("select", 'must be "none" without a pool (pool = 0)', self.select)
        if self.pool and self.batch_size:
            raise ParamError("batch_size", "must be 0 (full batch) with a pool", self.batch_size)

    def _check_language(self) -> None:
        per_class = 2 if self.same_class and self.pairs == "language" else 1
        if self.vocab - 1 < per_class * self.word_classes:
            rule = f"must be <= (vocab - 1) / {per_class} = {(self.vocab - 1) // per_class}" + (
                " (same_class needs two words a class)" if per_class == 2 else " (the last token is EOS)"
            )
            raise ParamError("word_classes", rule, self.word_classes)
        if self.pairs == "language" and self.token_pool:
            raise ParamError(
                "token_pool", 'must be 0 with pairs = "language" (the language draws the words)', self.token_pool
            )
        if self.edit_distance > self.response_len - self.shared_prefix:
            rule = f"must be <= response_len - shared_prefix = {self.response_len - self.shared_prefix}"
            raise ParamError("edit_distance", rule, self.edit_distance)

    def _check_transformer(self) -> None:
        if self.width % self.heads:
            raise ParamError("heads", f"must divide width = {self.width} (arch = transformer)", self.heads)
        length = self.prompt_len + self.response_len + self.append_eos
        if self.context < length:
            eos = " + 1 (EOS)" * self.append_eos
            rule = f"must be >= prompt_len + response_len{eos} = {length} (arch = transformer)"
            raise ParamError("context", rule, self.context)
        if self.train == "readout" and self.tie_embeddings:
            rule = 'must be false with train = "readout" (a tied head is the token embedding)'
            raise ParamError("tie_embeddings", rule, self.tie_embeddings)


__all__ = [
    "ARCHS",
    "DEVICES",
    "INSTALL_HINT",
    "PAIR_SOURCES",
    "SFT_KINDS",
    "TRANSFORMER_HINT",
    "Network",
    "cuda_available",
    "resolve_device",
    "torch_available",
    "transformers_available",
]
