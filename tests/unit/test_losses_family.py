"""The preference-loss family against TRL's definitions, by hand.

Every (h, log_ref) below was evaluated, not with flowsim, but by transcribing TRL's
expression (quoted in each loss's module docstring and in the comments here) into mpmath at
50 significant digits, with one pair and one-token responses (so TRL's sums and per-token
averages are the log-ratios h = log pi_theta - log_ref and log-probabilities h + log_ref):

    import mpmath as mp; mp.mp.dps = 50
    sig = lambda x: 1 / (1 + mp.exp(-x));  logsig = lambda x: -mp.log1p(mp.exp(-x))
    value = L(mp.mpf(h_w), mp.mpf(h_l))                     # the float inputs, exactly
    grad  = (mp.diff(lambda x: L(x, h_l), h_w), mp.diff(lambda x: L(h_w, x), h_l))

(mp.diff: mpmath's high-precision numerical derivative of that expression; it never sees our
analytic gradients), printed to 17 significant digits.  Sources: trl/trainer/dpo_trainer.py at
v1.9.0 (``_compute_loss``) and at v0.28.0 (``dpo_loss``: cDPO smoothing, bco_pair's delta,
rpo_alpha), trl/trainer/cpo_trainer.py (``cpo_loss``), trl/experimental/orpo/orpo_trainer.py
(``odds_ratio_loss``); DPOP from Pal et al. 2024, eq. 3.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from flowsim.model.losses import DPO, LOSSES, make_loss

# (kind, params, (h_w, h_l), (log_ref_w, log_ref_l), value, (dL/dh_w, dL/dh_l))
HAND = [
    # dpo -- TRL v1.9.0 _compute_loss (scores by f_divergence_type) + v0.28.0 "sigmoid" (cDPO smoothing):
    #   S = {reverse_kl: c, forward_kl: -exp(-c), js_divergence: logsig(c),
    #        alpha_divergence: exp(min((a-1) c, 80)) / (a-1)}        (c a log-ratio, a = alpha)
    #   d = S(h_w) - S(h_l);  L = -logsig(beta d) (1 - eps) - logsig(-beta d) eps
    #   (-170, -1) with a = 0.5 and (45, 41) with a = 3 put (a-1) h_w beyond TRL's clamp at 80: dL/dh_w = 0;
    #   at (45, 41) both scores are clamped, d = 0, L = log 2.
    ("dpo", {}, (0.3, -1.2), (0.0, 0.0), 0.62095704778953208, (-0.046257015465625048, 0.046257015465625048)),
    ("dpo", {}, (-2.0, 1.5), (0.0, 0.0), 0.88338215541877704, (-0.05866175789173301, 0.05866175789173301)),
    ("dpo", {}, (4.0, 3.0), (0.0, 0.0), 0.64439666007357089, (-0.047502081252106004, 0.047502081252106004)),
    (
        "dpo",
        {"f_divergence": "forward_kl"},
        (0.3, -1.2),
        (0.0, 0.0),
        0.57247527260013717,
        (-0.032290240833030877, 0.14471481941997836),
    ),
    (
        "dpo",
        {"f_divergence": "forward_kl"},
        (-2.0, 1.5),
        (0.0, 0.0),
        1.1143034805599843,
        (-0.49643834638345819, 0.01499113909128305),
    ),
    (
        "dpo",
        {"f_divergence": "forward_kl"},
        (4.0, 3.0),
        (0.0, 0.0),
        0.69157484714906971,
        (-0.0009143408972819842, 0.0024854362460985561),
    ),
    (
        "dpo",
        {"beta": 0.5, "f_divergence": "js_divergence"},
        (0.3, -1.2),
        (0.0, 0.0),
        0.49151335858258684,
        (-0.082621991328569349, 0.14920909749328572),
    ),
    (
        "dpo",
        {"beta": 0.5, "f_divergence": "js_divergence"},
        (-2.0, 1.5),
        (0.0, 0.0),
        1.2861722718762141,
        (-0.31870476798201692, 0.066008261939491405),
    ),
    (
        "dpo",
        {"beta": 0.5, "f_divergence": "js_divergence"},
        (4.0, 3.0),
        (0.0, 0.0),
        0.68556677551528971,
        (-0.0044623372826137596, 0.011766249948533256),
    ),
    (
        "dpo",
        {"f_divergence": "alpha_divergence"},
        (0.3, -1.2),
        (0.0, 0.0),
        0.60162054993835809,
        (-0.03891062973465952, 0.082373803794683834),
    ),
    (
        "dpo",
        {"f_divergence": "alpha_divergence"},
        (-2.0, 1.5),
        (0.0, 0.0),
        0.94275016676098067,
        (-0.16593614976118027, 0.028835379104983935),
    ),
    (
        "dpo",
        {"f_divergence": "alpha_divergence"},
        (-170.0, -1.0),
        (0.0, 0.0),
        1.1081244768787021e34,
        (0.0, 0.16487212707001282),
    ),
    (
        "dpo",
        {"beta": 0.2, "f_divergence": "alpha_divergence", "alpha": 3.0},
        (0.3, -1.2),
        (0.0, 0.0),
        0.61031965318631988,
        (-0.16647707772999368, 0.0082884056506253962),
    ),
    (
        "dpo",
        {"beta": 0.2, "f_divergence": "alpha_divergence", "alpha": 3.0},
        (-2.0, 1.5),
        (0.0, 0.0),
        2.1328512102501121,
        (-0.0032290509958436608, 3.5410843922985933),
    ),
    (
        "dpo",
        {"beta": 0.2, "f_divergence": "alpha_divergence", "alpha": 3.0},
        (45.0, 41.0),
        (0.0, 0.0),
        0.69314718055994531,
        (0.0, 0.0),
    ),
    (
        "dpo",
        {"beta": 0.2, "f_divergence": "alpha_divergence", "alpha": 3.0},
        (1.0, 0.9),
        (0.0, 0.0),
        0.62841759390128199,
        (-0.68949463016845265, 0.56451045780104185),
    ),
    (
        "dpo",
        {"label_smoothing": 0.1},
        (0.3, -1.2),
        (0.0, 0.0),
        0.63595704778953208,
        (-0.036257015465625046, 0.036257015465625046),
    ),
    (
        "dpo",
        {"label_smoothing": 0.1},
        (-2.0, 1.5),
        (0.0, 0.0),
        0.84838215541877704,
        (-0.048661757891733008, 0.048661757891733008),
    ),
    (
        "dpo",
        {"label_smoothing": 0.1},
        (4.0, 3.0),
        (0.0, 0.0),
        0.65439666007357089,
        (-0.037502081252106003, 0.037502081252106003),
    ),
    (
        "dpo",
        {"beta": 0.3, "f_divergence": "js_divergence", "label_smoothing": 0.25},
        (0.3, -1.2),
        (0.0, 0.0),
        0.6342431597247557,
        (-0.023267320602384221, 0.042019029707992843),
    ),
    (
        "dpo",
        {"beta": 0.3, "f_divergence": "js_divergence", "label_smoothing": 0.25},
        (-2.0, 1.5),
        (0.0, 0.0),
        0.87870402269791017,
        (-0.10319264690147675, 0.021372655671365638),
    ),
    (
        "dpo",
        {"beta": 0.3, "f_divergence": "js_divergence", "label_smoothing": 0.25},
        (4.0, 3.0),
        (0.0, 0.0),
        0.69087479616307831,
        (-0.0013366481201599497, 0.0035244614826217229),
    ),
    # hinge -- TRL: relu(1 - beta (h_w - h_l)); (12, 1) has margin 1.1 > 1: L = 0, grad 0.
    ("hinge", {}, (0.3, -1.2), (0.0, 0.0), 0.85, (-0.10000000000000001, 0.10000000000000001)),
    ("hinge", {}, (-2.0, 1.5), (0.0, 0.0), 1.35, (-0.10000000000000001, 0.10000000000000001)),
    ("hinge", {}, (12.0, 1.0), (0.0, 0.0), 0.0, (0.0, 0.0)),
    ("hinge", {"beta": 0.5}, (0.3, -1.2), (0.0, 0.0), 0.25000000000000003, (-0.5, 0.5)),
    ("hinge", {"beta": 0.5}, (2.0, 0.5), (0.0, 0.0), 0.25, (-0.5, 0.5)),
    # ipo -- TRL: ((h_w/1 - h_l/1) - 1/(2 beta))^2 (per-token averages over one token).
    ("ipo", {}, (0.3, -1.2), (0.0, 0.0), 12.249999999999998, (-6.9999999999999996, 6.9999999999999996)),
    ("ipo", {}, (-2.0, 1.5), (0.0, 0.0), 72.249999999999995, (-16.999999999999999, 16.999999999999999)),
    ("ipo", {}, (6.0, 0.5), (0.0, 0.0), 0.25000000000000028, (1.0000000000000006, -1.0000000000000006)),
    ("ipo", {"beta": 0.5}, (0.3, -1.2), (0.0, 0.0), 0.24999999999999994, (0.99999999999999989, -0.99999999999999989)),
    # exo_pair -- TRL: qw (logsig(m) - log1p(-eps)) + ql (logsig(-m) - log(eps)), m = beta (h_w - h_l),
    #   qw = sig(m), ql = sig(-m).
    ("exo_pair", {}, (0.3, -1.2), (0.0, 0.0), 2.5055165554778721, (-0.16797225263357724, 0.16797225263357724)),
    ("exo_pair", {}, (-2.0, 1.5), (0.0, 0.0), 3.3745582639623864, (-0.17597441301393536, 0.17597441301393536)),
    ("exo_pair", {}, (4.0, 3.0), (0.0, 0.0), 2.5899540258452565, (-0.16974415532634212, 0.16974415532634212)),
    (
        "exo_pair",
        {"beta": 0.5, "label_smoothing": 0.2},
        (0.3, -1.2),
        (0.0, 0.0),
        0.040409329841155373,
        (-0.069322677923448001, 0.069322677923448001),
    ),
    (
        "exo_pair",
        {"beta": 0.5, "label_smoothing": 0.2},
        (-2.0, 1.5),
        (0.0, 0.0),
        0.98489416962962565,
        (-0.19778918886266378, 0.19778918886266378),
    ),
    (
        "exo_pair",
        {"beta": 0.5, "label_smoothing": 0.2},
        (4.0, 3.0),
        (0.0, 0.0),
        0.083678732983331594,
        (-0.10414123248325741, 0.10414123248325741),
    ),
    # nca_pair -- TRL: -logsig(beta h_w) - 0.5 logsig(-beta h_w) - 0.5 logsig(-beta h_l).
    ("nca_pair", {}, (0.3, -1.2), (0.0, 0.0), 1.3498625653099794, (-0.023875084367406943, 0.023501797411771414)),
    ("nca_pair", {}, (-2.0, 1.5), (0.0, 0.0), 1.4826868279671538, (-0.032475099596871688, 0.026871492267187479)),
    ("nca_pair", {}, (4.0, 3.0), (0.0, 0.0), 1.3967005008341925, (-0.0101968509831322, 0.028722125840582951)),
    (
        "nca_pair",
        {"beta": 0.7},
        (0.3, -1.2),
        (0.0, 0.0),
        1.1749093213628372,
        (-0.12007669494695846, 0.10553717439911143),
    ),
    # robust -- TRL: (-(1-eps) logsig(m) - (-eps logsig(-m))) / (1 - 2 eps), m = beta (h_w - h_l);
    #   eps = 0 (last row) is DPO's first row.
    (
        "robust",
        {"label_smoothing": 0.1},
        (0.3, -1.2),
        (0.0, 0.0),
        0.60220704778953207,
        (-0.058757015465625049, 0.058757015465625049),
    ),
    (
        "robust",
        {"label_smoothing": 0.1},
        (-2.0, 1.5),
        (0.0, 0.0),
        0.92713215541877705,
        (-0.071161757891733011, 0.071161757891733011),
    ),
    (
        "robust",
        {"label_smoothing": 0.1},
        (4.0, 3.0),
        (0.0, 0.0),
        0.63189666007357089,
        (-0.060002081252106005, 0.060002081252106005),
    ),
    (
        "robust",
        {"beta": 0.5, "label_smoothing": 0.3},
        (0.3, -1.2),
        (0.0, 0.0),
        -0.17562899388509997,
        (-0.53541065041230348, 0.53541065041230348),
    ),
    (
        "robust",
        {"beta": 0.5, "label_smoothing": 0.3},
        (-2.0, 1.5),
        (0.0, 0.0),
        3.2227241504380871,
        (-0.80097640098415523, 0.80097640098415523),
    ),
    ("robust", {}, (0.3, -1.2), (0.0, 0.0), 0.62095704778953208, (-0.046257015465625048, 0.046257015465625048)),
    # bco_pair -- TRL v0.28.0: -logsig(beta h_w - delta) - logsig(-(beta h_l - delta)), delta held fixed.
    ("bco_pair", {}, (0.3, -1.2), (0.0, 0.0), 1.313205777937062, (-0.049250056244937964, 0.047003594823542827)),
    ("bco_pair", {}, (-2.0, 1.5), (0.0, 0.0), 1.5690959171711239, (-0.054983399731247794, 0.053742984534374958)),
    ("bco_pair", {}, (4.0, 3.0), (0.0, 0.0), 1.3673704968684797, (-0.040131233988754802, 0.057444251681165902)),
    (
        "bco_pair",
        {"beta": 0.5, "delta": 0.2},
        (0.3, -1.2),
        (0.0, 0.0),
        1.089560313961064,
        (-0.25624869824210517, 0.15501275943619378),
    ),
    (
        "bco_pair",
        {"beta": 0.5, "delta": 0.2},
        (-2.0, 1.5),
        (0.0, 0.0),
        2.4687749488013688,
        (-0.38426239174950882, 0.31706779550540034),
    ),
    (
        "bco_pair",
        {"beta": 0.5, "delta": 0.2},
        (4.0, 3.0),
        (0.0, 0.0),
        1.6939860643590663,
        (-0.070925532450243895, 0.39291749152127931),
    ),
    # sppo_hard -- TRL: (h_w - 0.5/beta)^2 + (h_l + 0.5/beta)^2.
    ("sppo_hard", {}, (0.3, -1.2), (0.0, 0.0), 36.529999999999996, (-9.3999999999999995, 7.5999999999999995)),
    ("sppo_hard", {}, (-2.0, 1.5), (0.0, 0.0), 91.249999999999993, (-13.999999999999999, 12.999999999999999)),
    ("sppo_hard", {}, (4.0, 3.0), (0.0, 0.0), 64.999999999999995, (-1.9999999999999994, 15.999999999999999)),
    ("sppo_hard", {"beta": 0.25}, (0.3, -1.2), (0.0, 0.0), 3.5300000000000001, (-3.4, 1.6000000000000001)),
    # apo_zero -- TRL: (1 - sig(beta h_w)) + sig(beta h_l).
    ("apo_zero", {}, (0.3, -1.2), (0.0, 0.0), 0.96253651068480786, (-0.024994375843642436, 0.024910215560185008)),
    ("apo_zero", {}, (-2.0, 1.5), (0.0, 0.0), 1.0872638426562275, (-0.024751657271185996, 0.0248599006677543)),
    ("apo_zero", {}, (4.0, 3.0), (0.0, 0.0), 0.97575485669920699, (-0.024026074574152916, 0.024445831169074588)),
    (
        "apo_zero",
        {"beta": 0.6},
        (0.3, -1.2),
        (0.0, 0.0),
        0.78251409055865951,
        (-0.14879153101159237, 0.13212409059538191),
    ),
    # apo_down -- TRL: sig(beta h_w) + (1 - sig(beta (h_w - h_l))).
    ("apo_down", {}, (0.3, -1.2), (0.0, 0.0), 0.97006959220687084, (0.00013447517588813548, 0.0248599006677543)),
    ("apo_down", {}, (-2.0, 1.5), (0.0, 0.0), 1.0367835816048522, (0.00050191776893598459, 0.024249739502250011)),
    ("apo_down", {}, (4.0, 3.0), (0.0, 0.0), 1.073708472633512, (-0.00091152944513628189, 0.024937604019289198)),
    (
        "apo_down",
        {"beta": 0.6},
        (0.3, -1.2),
        (0.0, 0.0),
        0.8339293897485761,
        (0.025491346606234299, 0.12330018440535807),
    ),
    # discopop -- TRL: m = beta (h_w - h_l), w = sig(m / tau): -logsig(m) (1 - w) + exp(-m) w.
    ("discopop", {}, (0.3, -1.2), (0.0, 0.0), 0.8493375792893855, (-0.062520302011991081, 0.062520302011991081)),
    ("discopop", {}, (-2.0, 1.5), (0.0, 0.0), 0.88387019223605163, (-0.057762413964149613, 0.057762413964149613)),
    ("discopop", {}, (0.5, 0.2), (0.0, 0.0), 0.86691131763717633, (0.053586164119745234, -0.053586164119745234)),
    (
        "discopop",
        {"beta": 0.5, "discopop_tau": 0.5},
        (0.3, -1.2),
        (0.0, 0.0),
        0.45676998286463497,
        (-0.20960905794280018, 0.20960905794280018),
    ),
    (
        "discopop",
        {"beta": 0.5, "discopop_tau": 0.5},
        (-2.0, 1.5),
        (0.0, 0.0),
        2.022911460875085,
        (-0.38844600919388295, 0.38844600919388295),
    ),
    # sigmoid_norm -- TRL: -logsig(beta (h_w/1 - h_l/1)) (one-token masks): DPO's numbers.
    ("sigmoid_norm", {}, (0.3, -1.2), (0.0, 0.0), 0.62095704778953208, (-0.046257015465625048, 0.046257015465625048)),
    ("sigmoid_norm", {}, (-2.0, 1.5), (0.0, 0.0), 0.88338215541877704, (-0.05866175789173301, 0.05866175789173301)),
    ("sigmoid_norm", {}, (4.0, 3.0), (0.0, 0.0), 0.64439666007357089, (-0.047502081252106004, 0.047502081252106004)),
    # rpo -- TRL v0.28.0: dpo(h) + rpo_alpha * nll, nll = -log pi(y_w) = -(h_w + log_ref_w).
    ("rpo", {}, (0.3, -1.2), (-1.5, -0.7), 1.8209570477895321, (-1.046257015465625, 0.046257015465625048)),
    ("rpo", {}, (-2.0, 1.5), (-0.25, -2.0), 3.133382155418777, (-1.058661757891733, 0.05866175789173301)),
    ("rpo", {}, (4.0, 3.0), (-4.5, -3.25), 1.1443966600735709, (-1.047502081252106, 0.047502081252106004)),
    (
        "rpo",
        {"beta": 0.5, "rpo_alpha": 0.25, "f_divergence": "js_divergence", "label_smoothing": 0.1},
        (0.3, -1.2),
        (-1.5, -0.7),
        0.83695971972606204,
        (-0.3113441171691523, 0.11078285831833483),
    ),
    (
        "rpo",
        {"beta": 0.5, "rpo_alpha": 0.25, "f_divergence": "js_divergence", "label_smoothing": 0.1},
        (-2.0, 1.5),
        (-0.25, -2.0),
        1.7523965352232031,
        (-0.52466491408312279, 0.056886985749173588),
    ),
    # simpo -- TRL cpo_loss "simpo" + cpo_alpha * nll: lp = h + log_ref, x = (lp_w - lp_l) - gamma/beta,
    #   L = -logsig(beta x) (1 - eps) - logsig(-beta x) eps - cpo_alpha lp_w.
    ("simpo", {}, (0.3, -1.2), (-1.5, -0.7), 0.93108378257967132, (-0.060587366843176061, 0.060587366843176061)),
    ("simpo", {}, (-2.0, 1.5), (-0.25, -2.0), 1.0865508328678525, (-0.066262183717008256, 0.066262183717008256)),
    ("simpo", {}, (4.0, 3.0), (-4.5, -3.25), 0.98971175467299344, (-0.062831618829536627, 0.062831618829536627)),
    (
        "simpo",
        {"beta": 2.5, "simpo_gamma": 1.4, "label_smoothing": 0.1, "cpo_alpha": 1.0},
        (0.3, -1.2),
        (-1.5, -0.7),
        1.7683821554187771,
        (-1.7834560527066749, 0.78345605270667494),
    ),
    (
        "simpo",
        {"beta": 2.5, "simpo_gamma": 1.4, "label_smoothing": 0.1, "cpo_alpha": 1.0},
        (-2.0, 1.5),
        (-0.25, -2.0),
        7.4505993895846689,
        (-3.2422635214120955, 2.2422635214120955),
    ),
    (
        "simpo",
        {"beta": 2.5, "simpo_gamma": 1.4, "label_smoothing": 0.1, "cpo_alpha": 1.0},
        (1.2, -0.3),
        (-1.3, -0.8),
        0.49733532511543091,
        (-1.374349736012206, 0.374349736012206),
    ),
    # dpop -- Pal et al. eq. 3: -logsig(beta (h_w - h_l - lambda max(0, -h_w))).
    ("dpop", {}, (-0.4, 0.2), (0.0, 0.0), 2.1799619666343483, (-4.5234662666323976, 0.08869541699279211)),
    ("dpop", {}, (0.3, -1.2), (0.0, 0.0), 0.62095704778953208, (-0.046257015465625048, 0.046257015465625048)),
    ("dpop", {}, (-2.0, -3.0), (0.0, 0.0), 9.9000501734233495, (-5.0997441219601131, 0.099994982783531629)),
    (
        "dpop",
        {"beta": 0.5, "dpop_lambda": 5.0},
        (-0.4, 0.2),
        (0.0, 0.0),
        1.5410084538329923,
        (-2.3575049491276759, 0.39291749152127931),
    ),
    (
        "dpop",
        {"beta": 0.5, "dpop_lambda": 5.0},
        (0.3, -1.2),
        (0.0, 0.0),
        0.38687100611489995,
        (-0.16041065041230352, 0.16041065041230352),
    ),
    # orpo -- TRL: lp = h + log_ref, log_odds = (lp_w - lp_l) - (log(1 - exp(lp_w)) - log(1 - exp(lp_l))),
    #   L = -lp_w - lambda logsig(log_odds); the last default row has lp_w = -0.001 (log(-expm1) branch).
    ("orpo", {}, (0.3, -1.2), (-1.5, -0.7), 1.2342204231570574, (-1.0414702998954585, 0.034076453733625566)),
    ("orpo", {}, (-0.2, 0.1), (-0.25, -2.0), 0.45952658492267178, (-1.0250761172252716, 0.010685023100587598)),
    ("orpo", {}, (1.0, -3.0), (-2.5, -0.1), 1.5152074087134357, (-1.0181594585920085, 0.014773049798507989)),
    ("orpo", {}, (0.2, -2.0), (-0.201, -0.5), 0.0010089466215265562, (-1.0089506951844891, 9.7462415527523472e-6)),
    (
        "orpo",
        {"orpo_lambda": 1.5},
        (0.3, -1.2),
        (-1.5, -0.7),
        1.7133063473558611,
        (-1.6220544984318771, 0.51114680600438346),
    ),
    (
        "orpo",
        {"orpo_lambda": 1.5},
        (-0.2, 0.1),
        (-0.25, -2.0),
        0.59289877384007657,
        (-1.3761417583790737, 0.16027534650881396),
    ),
]


@pytest.mark.parametrize(("kind", "params", "h", "log_ref", "value", "grad"), HAND)
def test_matches_trl_by_hand(kind, params, h, log_ref, value, grad):
    loss = make_loss(kind, **params)
    h, log_ref = np.array(h), np.array(log_ref)
    np.testing.assert_allclose(loss.value(h, log_ref), value, rtol=1e-12, atol=0)
    np.testing.assert_allclose(loss.grad(h, log_ref), grad, rtol=1e-12, atol=0)


def test_every_loss_has_three_hand_points_at_its_defaults_or_more():
    counts = {kind: sum(row[0] == kind for row in HAND) for kind in LOSSES}
    assert min(counts.values()) >= 3, counts


@pytest.mark.parametrize("kind", sorted(LOSSES))
def test_batched_calls_match_pointwise(kind):
    rows = [row for row in HAND if row[0] == kind]
    for params in {tuple(sorted(r[1].items())) for r in rows}:
        sub = [r for r in rows if tuple(sorted(r[1].items())) == params]
        loss = make_loss(kind, **dict(params))
        h = np.array([r[2] for r in sub])[:, None, :]  # shape (n, 1, 2)
        log_ref = np.array([r[3] for r in sub])[:, None, :]
        assert loss.value(h, log_ref).shape == (len(sub), 1)
        assert loss.grad(h, log_ref).shape == (len(sub), 1, 2)
        np.testing.assert_allclose(loss.value(h, log_ref)[:, 0], [r[4] for r in sub], rtol=1e-12, atol=0)
        np.testing.assert_allclose(loss.grad(h, log_ref)[:, 0], [r[5] for r in sub], rtol=1e-12, atol=0)


def test_registry_kinds_and_defaults():
    assert sorted(LOSSES) == sorted(
        [
            "dpo",
            "hinge",
            "ipo",
            "exo_pair",
            "nca_pair",
            "robust",
            "bco_pair",
            "sppo_hard",
            "apo_zero",
            "apo_down",
            "discopop",
            "sigmoid_norm",
            "rpo",
            "simpo",
            "dpop",
            "orpo",
        ]
    )
    for kind, cls in LOSSES.items():
        loss = cls()
        assert loss.kind == kind
        if "beta" in loss.params():
            assert loss.beta == 0.1  # TRL's DPOConfig / CPOConfig default
    assert DPO().params() == {"beta": 0.1, "f_divergence": "reverse_kl", "alpha": 0.5, "label_smoothing": 0.0}
    assert make_loss("exo_pair").label_smoothing == 1e-3
    assert make_loss("discopop").discopop_tau == 0.05
    assert make_loss("simpo").params() == {"beta": 0.1, "simpo_gamma": 0.5, "label_smoothing": 0.0, "cpo_alpha": 0.0}
    assert make_loss("rpo").rpo_alpha == 1.0
    assert make_loss("dpop").dpop_lambda == 50.0
    assert make_loss("orpo").params() == {"orpo_lambda": 0.1}
    assert make_loss("bco_pair").delta == 0.0
    assert {k for k, c in LOSSES.items() if c.uses_log_probs} == {"rpo", "simpo", "orpo"}


def test_default_dpo_keeps_the_plain_operations():
    # The defaults must give bit-for-bit the original DPO: softplus(-m) by np.logaddexp, beta expit(-m).
    from scipy.special import expit

    h = np.random.default_rng(5).uniform(-50, 50, (500, 2))
    m = 0.1 * (h[:, 0] - h[:, 1])
    loss = DPO()
    assert loss.value(h).tobytes() == np.logaddexp(0.0, -m).tobytes()
    bs = 0.1 * expit(-m)
    assert loss.grad(h).tobytes() == np.stack([-bs, bs], axis=-1).tobytes()


# ---- bad parameters -------------------------------------------------------------------------------

BAD = [(kind, {"beta": b}) for kind in sorted(LOSSES) if kind != "orpo" for b in (0.0, -1.0, math.inf)]
BAD += [(kind, {"label_smoothing": e}) for kind in ("dpo", "robust", "rpo", "simpo") for e in (-0.1, 0.5, 0.7)]
BAD += [
    ("exo_pair", {"label_smoothing": 0.0}),  # TRL: "Label smoothing must be greater than 0.0 ..."
    ("exo_pair", {"label_smoothing": 0.5}),
    ("dpo", {"f_divergence": "kl"}),
    ("dpo", {"alpha": 0.0}),
    ("rpo", {"alpha": -1.0}),
    ("rpo", {"f_divergence": "chi2"}),
    ("rpo", {"rpo_alpha": -0.5}),
    ("simpo", {"simpo_gamma": -0.5}),
    ("simpo", {"cpo_alpha": -1.0}),
    ("discopop", {"discopop_tau": 0.0}),
    ("discopop", {"discopop_tau": 1.5}),
    ("dpop", {"dpop_lambda": -1.0}),
    ("orpo", {"orpo_lambda": -0.1}),
    ("orpo", {"orpo_lambda": math.nan}),
    ("bco_pair", {"delta": math.inf}),
]


@pytest.mark.parametrize(("kind", "params"), BAD, ids=lambda x: str(x))
def test_bad_parameters_raise_naming_the_key(kind, params):
    ((key, value),) = params.items()
    with pytest.raises(ValueError) as info:
        make_loss(kind, **params)
    msg = str(info.value)
    assert msg.startswith(f"{key} must ") and msg.endswith(f"; got {value!r}"), msg


def test_beta_message_reads_as_documented():
    with pytest.raises(ValueError, match=r"^beta must be a number in \[1e-06, 10\] \(.*\); got -1.0$"):
        make_loss("hinge", beta=-1.0)
    with pytest.raises(ValueError, match=r"^label_smoothing must be in \[0, 0.5\); got 0.5$"):
        make_loss("dpo", label_smoothing=0.5)


# ---- minimisers -----------------------------------------------------------------------------------


def test_ipo_minimised_on_the_line_margin_half_over_beta():
    for beta in (0.1, 0.7):
        loss = make_loss("ipo", beta=beta)
        h = np.array([[1 / (2 * beta) + c, c] for c in (-3.0, 0.0, 2.5)])
        np.testing.assert_allclose(loss.grad(h), 0.0, atol=1e-15)
        np.testing.assert_allclose(loss.value(h), 0.0, atol=1e-28)
        assert np.all(np.abs(loss.grad(h + np.array([0.01, 0.0]))) > 1e-3)


def test_hinge_flat_beyond_margin_one_over_beta():
    loss = make_loss("hinge")  # margin 1 at h_w - h_l = 10
    h = np.array([[10.0 + 1e-9, 0.0], [15.0, 2.0], [3.0, -9.0]])
    assert np.all(loss.value(h) == 0.0) and np.all(loss.grad(h) == 0.0)
    np.testing.assert_array_equal(loss.grad([[9.999, 0.0]]), [[-0.1, 0.1]])
    k = loss.kinks(np.array([[9.9, 0.0], [10.1, 0.0]]))
    assert k.shape == (2, 1) and k[0, 0] > 0 > k[1, 0]


def test_sppo_hard_minimiser_is_plus_minus_half_over_beta():
    for beta in (0.1, 0.25):
        loss = make_loss("sppo_hard", beta=beta)
        hstar = np.array([0.5 / beta, -0.5 / beta])
        assert np.all(loss.grad(hstar) == 0.0) and loss.value(hstar) == 0.0
        np.testing.assert_array_equal(loss.hessian(hstar), 2 * np.eye(2))


def test_exo_pair_minimised_where_the_margin_is_log_odds_of_the_smoothing():
    for beta, eps in ((0.1, 1e-3), (0.5, 0.2)):
        loss = make_loss("exo_pair", beta=beta, label_smoothing=eps)
        c = math.log((1 - eps) / eps)  # KL(q || (1-eps, eps)) = 0 where q_w = sigmoid(m) = 1 - eps
        h = np.array([[c / beta + s, s] for s in (-1.0, 0.0, 4.0)])
        np.testing.assert_allclose(loss.grad(h), 0.0, atol=1e-16)
        np.testing.assert_allclose(loss.value(h), 0.0, atol=1e-15)
        assert np.all(np.diag(loss.hessian(h[0])) > 0)
        assert loss.grad(h[0] - [0.1, 0])[0] < 0 < loss.grad(h[0] + [0.1, 0])[0]


def test_cdpo_and_smoothed_simpo_minimised_at_log_odds_of_the_smoothing():
    eps = 0.1
    mstar = math.log((1 - eps) / eps)  # dL/dm = eps sigmoid(m) - (1 - eps) sigmoid(-m) = 0
    for beta, f_div in ((0.1, "reverse_kl"), (2.0, "js_divergence")):
        loss = DPO(beta=beta, label_smoothing=eps, f_divergence=f_div)
        if f_div == "reverse_kl":
            h = np.array([mstar / beta, 0.0])
        else:  # logsig(h_w) - logsig(h_l) = m*/beta (< softplus(2), reachable at beta = 2) with h_l = -2:
            d = mstar / beta - math.log1p(math.exp(2.0))  # logsig(h_w) = d < 0
            h = np.array([-math.log(math.expm1(-d)), -2.0])  # sigmoid(h_w) = exp(d)
        np.testing.assert_allclose(loss.grad(h), 0.0, atol=1e-15)
        assert np.all(np.abs(loss.grad(h + np.array([0.05, 0.0]))) > 1e-5)  # and only there
    simpo = make_loss("simpo", beta=2.5, simpo_gamma=1.4, label_smoothing=eps)
    log_ref = np.array([-1.0, -2.0])
    lpw = -0.5
    lpl = lpw - (mstar + 1.4) / 2.5  # z = beta (lp_w - lp_l) - gamma = m*
    h = np.array([lpw, lpl]) - log_ref
    np.testing.assert_allclose(simpo.grad(h, log_ref), 0.0, atol=1e-15)


def test_robust_has_no_stationary_point():
    # dL/dm = -((1 - eps) sigmoid(-m) + eps sigmoid(m)) / (1 - 2 eps) lies in (-(1-eps), -eps) / (1 - 2 eps)
    eps = 0.2
    loss = make_loss("robust", label_smoothing=eps)
    d = np.linspace(-500, 500, 2001)
    g = loss.grad(np.stack([d, 0 * d], -1))[:, 0] / 0.1
    assert np.all(g < -eps / (1 - 2 * eps) + 1e-15) and np.all(g >= -(1 - eps) / (1 - 2 * eps) - 1e-15)
    assert loss.value([1000.0, 0.0]) < loss.value([100.0, 0.0]) < 0  # unbounded below


def test_nca_pair_chosen_gradient_vanishes_at_log2_over_beta():
    loss = make_loss("nca_pair")
    g = loss.grad(np.array([[math.log(2) / 0.1, h_l] for h_l in (-5.0, 0.0, 5.0)]))
    np.testing.assert_allclose(g[:, 0], 0.0, atol=1e-17)
    assert np.all(g[:, 1] > 0)


def test_discopop_local_minimum_at_negative_margin():
    # mpmath.findroot of mp.diff of TRL's expression (beta = 0.1, tau = 0.05) in d = h_w - h_l:
    # local minimum d = -1.1856989268826375593 (d2L = 0.0809), local maximum d = 0.7200611379841592868 (d2L = -0.124),
    # and dL/dd = +0.0784264 at d = 0: from h = 0 the flow falls back to the minimum, y_l ahead.
    loss = make_loss("discopop")
    for d, sign in ((-1.1856989268826375593, 1), (0.7200611379841592868, -1)):
        h = np.array([d, 0.0])
        assert abs(loss.grad(h)[0]) < 1e-15
        assert sign * loss.hessian(h)[0, 0] > 0
    np.testing.assert_allclose(loss.grad([0.0, 0.0])[0], 0.07842640972, rtol=1e-9)


# ---- kinks, consistency, Hessians, extremes -------------------------------------------------------


def test_kinks():
    dpop = make_loss("dpop")
    k = dpop.kinks(np.array([[-1e-9, 3.0], [1e-9, 3.0]]))
    assert k.shape == (2, 1) and k[0, 0] < 0 < k[1, 0]
    g = dpop.grad(np.array([[-1e-9, 0.0], [1e-9, 0.0]]))
    np.testing.assert_allclose(g[0, 0] / g[1, 0], 51.0, rtol=1e-6)  # slope 1 + lambda below h_w = 0, 1 above
    clamp = DPO(f_divergence="alpha_divergence", alpha=0.5)  # (alpha - 1) h = 80 at h = -160
    k = clamp.kinks(np.array([[-160.001, 0.0], [-159.999, 0.0]]))
    assert k.shape == (2, 2) and k[0, 0] > 0 > k[1, 0] and np.all(k[:, 1] < 0)
    assert clamp.grad([-160.001, 0.0])[0] == 0.0 and clamp.grad([-159.999, 0.0])[0] < 0
    assert DPO(f_divergence="alpha_divergence", alpha=1.0).kinks(np.zeros(2)) is None  # TRL: reverse_kl
    smooth = [k for k in LOSSES if k not in ("hinge", "dpop")]
    assert all(make_loss(k).kinks(np.zeros((3, 2)), np.zeros((3, 2))) is None for k in smooth)


def test_equivalences():
    rng = np.random.default_rng(7)
    h, log_ref = rng.uniform(-4, 4, (50, 2)), np.log(rng.uniform(0.05, 1, (50, 2)))
    pairs = [
        (make_loss("sigmoid_norm", beta=0.3), DPO(beta=0.3)),
        (make_loss("robust", beta=0.3), DPO(beta=0.3)),
        (make_loss("rpo", beta=0.3, rpo_alpha=0.0), DPO(beta=0.3)),
        (make_loss("dpop", beta=0.3, dpop_lambda=0.0), DPO(beta=0.3)),
        (make_loss("bco_pair", beta=0.3), make_loss("bco_pair", beta=0.3, delta=0.0)),
        (DPO(f_divergence="alpha_divergence", alpha=1.0), DPO()),  # TRL's |alpha - 1| < 1e-6 fall-back
    ]
    for a, b in pairs:
        np.testing.assert_allclose(a.value(h, log_ref), b.value(h, log_ref), rtol=1e-14)
        np.testing.assert_allclose(a.grad(h, log_ref), b.grad(h, log_ref), rtol=1e-14, atol=1e-17)
    # SimPO reads log pi = h + log_ref: the same pi gives the same loss whatever the reference.
    simpo = make_loss("simpo")
    np.testing.assert_allclose(simpo.value(h + log_ref, 0.0), simpo.value(h, log_ref), rtol=1e-14)


NON_DEFAULT = [
    DPO(f_divergence="forward_kl"),
    DPO(beta=0.5, f_divergence="js_divergence", label_smoothing=0.2),
    DPO(f_divergence="alpha_divergence", alpha=0.3),
    DPO(beta=0.2, f_divergence="alpha_divergence", alpha=3.0),
    make_loss("exo_pair", beta=0.5, label_smoothing=0.2),
    make_loss("robust", beta=0.5, label_smoothing=0.3),
    make_loss("bco_pair", beta=0.5, delta=-0.4),
    make_loss("discopop", beta=0.5, discopop_tau=1.0),
    make_loss("rpo", beta=0.5, f_divergence="js_divergence", label_smoothing=0.1),
    make_loss("simpo", beta=2.5, simpo_gamma=1.4, label_smoothing=0.1, cpo_alpha=1.0),
    make_loss("dpop", beta=0.5, dpop_lambda=5.0),
    make_loss("orpo", orpo_lambda=2.0),
]


@pytest.mark.parametrize("loss", NON_DEFAULT, ids=repr)
def test_non_default_grad_and_hessian_match_central_differences(loss):
    rng = np.random.default_rng(11)
    h = rng.uniform(-3, 3, (100, 2))
    log_ref = np.log(rng.uniform(0.05, 1.0, (100, 2)))
    if loss.uses_log_probs:
        h = np.minimum(h, -log_ref - 0.05)
    k = loss.kinks(h, log_ref)
    ok = np.ones(len(h), bool) if k is None else np.all(np.abs(k) > 1e-3, axis=-1)
    h, log_ref = h[ok], log_ref[ok]
    step = 1e-6
    e = np.eye(2) * step
    fd = np.stack([(loss.value(h + e[i], log_ref) - loss.value(h - e[i], log_ref)) / (2 * step) for i in range(2)], -1)
    np.testing.assert_allclose(loss.grad(h, log_ref), fd, rtol=1e-6, atol=1e-8)
    e = np.eye(2) * 1e-5
    jac = np.stack([(loss.grad(h + e[i], log_ref) - loss.grad(h - e[i], log_ref)) / 2e-5 for i in range(2)], -1)
    H = loss.hessian(h, log_ref)
    np.testing.assert_allclose(H, np.swapaxes(H, -1, -2), atol=1e-12)
    np.testing.assert_allclose(H, jac, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    "loss",
    NON_DEFAULT + [make_loss(k, beta=LOSSES[k].beta_range[1]) for k in sorted(LOSSES) if k not in ("dpo", "orpo")],
    ids=repr,
)
def test_non_default_finite_at_the_extremes(loss):
    ends = np.array([-700.0, -30.0, -1e-3, 0.0, 1e-3, 30.0, 700.0])
    h = np.stack(np.meshgrid(ends, ends), -1).reshape(-1, 2)
    for log_ref in (0.0, np.log(1e-300), np.array([np.log(0.5), np.log(1e-300)])):
        hh = np.minimum(h, -np.asarray(log_ref) - 1e-12) if loss.uses_log_probs else h
        with np.errstate(all="raise"):
            assert np.all(np.isfinite(loss.value(hh, log_ref)))
            assert np.all(np.isfinite(loss.grad(hh, log_ref)))


def test_orpo_log1mexp_branches_agree_and_odds_are_exact():
    from flowsim.model.losses.orpo import log1mexp

    x = np.array([-1e-12, -1e-3, -math.log(2) + 1e-12, -math.log(2) - 1e-12, -5.0, -40.0, -800.0])
    # mpmath, 50 digits: log(1 - exp(x)) at those doubles (the last is -exp(-800), below the smallest double)
    want = [
        -27.631021115929048,
        -6.9082552373154707,
        -0.69314718056094531,
        -0.69314718055894535,
        -0.0067607494494885578,
        -4.248354255291589e-18,
        0.0,
    ]
    with np.errstate(all="raise"):
        got = log1mexp(x)
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=0)
