"""What the drum model is trained on and scored by: ``DrumLoss`` (docs/derivations/drum_vae.md,
(10)-(14)) and ``drum_metrics`` (hit accuracy, precision, recall, F1, velocity and timing MSE).

Shapes: B windows, T steps, K = 9 drum classes; the model's outputs are h_logits, v, o
(B, T, K) and mu, log_var (B, Z); the targets hvo (B, T, 3K) are [H | V | O] side by side.
The KL term lives here, not in the model's VariationalBottleneck: its free bits are per
window (MusicVAE), and its gradients reach the bottleneck as ``dmu``, ``dlog_var``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import nnscratch as nn
from nnscratch.functions import loss as LF
from nnscratch.functions.base import Context

from .model import K


@dataclass
class LossConfig:
    pos_weight: float = 2.0      # weight of the positive (hit) term of the BCE (10)
    w_velocity: float = 1.0
    w_offset: float = 1.0
    beta: float = 0.2            # weight of the KL term (13)
    free_bits: float = 0.0       # nats of KL per window that cost nothing (12)


class DrumLoss:
    """L = L_H + w_V L_V + w_O L_O + beta L_KL  (docs/derivations/drum_vae.md, (10)-(14)).

        L_H  = mean over cells of the weighted BCE of the hit logits         (10)
        L_V  = sum_hits (v - V)^2 / #hits,  L_O likewise                     (11)
        L_KL = mean_b max(KL_b - free_bits, 0) / (T K)                       (12)

    KL_b is the window's KL(q(z|x) || N(0, I)) in nats; dividing by the T K cells puts it on
    the scale of L_H's per-cell mean, so beta = 1 is the ELBO's weighting. ``loss, parts =
    fn(outputs, hvo)``; ``fn.backward()`` returns the tuple ``DrumVAE.backward`` takes.
    """

    def __init__(self, cfg: LossConfig | None = None):
        self.cfg = cfg or LossConfig()
        self._saved = None

    def __call__(self, outputs, hvo):
        h_logits, v, o, mu, log_var = outputs
        xp_ = nn.get_array_module(h_logits)
        hvo = xp_.asarray(hvo, dtype=h_logits.dtype)
        H, V, O = hvo[..., :K], hvo[..., K:2 * K], hvo[..., 2 * K:]
        B, T, _ = H.shape
        c = self.cfg
        n_hits = max(float(H.sum()), 1.0)
        ctx_h, ctx_v, ctx_o, ctx_kl = Context(), Context(), Context(), Context()
        l_h = LF.BCEWithLogits.forward(ctx_h, h_logits, H, pos_weight=c.pos_weight)      # (10)
        l_v = LF.MSE.forward(ctx_v, H * v, V, reduction="sum") / n_hits                   # (11)
        l_o = LF.MSE.forward(ctx_o, H * o, O, reduction="sum") / n_hits                   # (11)
        kl_b = LF.KLStandardNormal.forward(ctx_kl, mu, log_var, reduction="none")         # (12)
        active = (kl_b > c.free_bits).astype(h_logits.dtype)
        l_kl = (active * (kl_b - c.free_bits)).sum() / (B * T * K)
        loss = l_h + c.w_velocity * l_v + c.w_offset * l_o + c.beta * l_kl                # (13)
        LF.check_finite("DrumLoss", loss=xp_.asarray(loss), h_logits=h_logits, v=v, o=o, mu=mu,
                        log_var=log_var)
        self._saved = (ctx_h, ctx_v, ctx_o, ctx_kl, H, n_hits, active, B * T * K)
        parts = {"note": float(l_h), "velocity": float(l_v), "offset": float(l_o),
                 "kl": float(kl_b.mean()), "kl_cost": float(l_kl)}
        return float(loss), parts

    def backward(self):
        if self._saved is None:
            raise RuntimeError("DrumLoss.backward called without a matching forward")
        ctx_h, ctx_v, ctx_o, ctx_kl, H, n_hits, active, cells = self._saved
        self._saved = None
        c = self.cfg
        dh, _ = LF.BCEWithLogits.backward(ctx_h)                                  # (14) loss.md (6)
        dv = H * LF.MSE.backward(ctx_v, c.w_velocity / n_hits)[0]                  # (14)
        do = H * LF.MSE.backward(ctx_o, c.w_offset / n_hits)[0]                    # (14)
        dmu, dlog_var = LF.KLStandardNormal.backward(ctx_kl, active * (c.beta / cells))  # (14)
        return dh, dv, do, dmu, dlog_var


# ----------------------------------------------------------------------------------------------
# Metrics
# ----------------------------------------------------------------------------------------------
def drum_metrics(H_pred, V_pred, O_pred, hvo, v_raw=None, o_raw=None) -> dict:
    """Hit accuracy, precision, recall, F1 (over all cells), velocity and timing MSE.

    ``*_hits``: on the target's hits, comparing the predictor's velocity/offset at those
    cells (``v_raw``/``o_raw`` when the model gives a value at every cell, else V_pred/O_pred);
    ``*_all``: over every cell, the drums as written (V, O zero where no hit predicted)
    against the targets (zero where no hit), the convention of a Keras MSE on V and O.
    """
    hvo = np.asarray(hvo, dtype=np.float64)
    H, V, O = hvo[..., :K] > 0.5, hvo[..., K:2 * K], hvo[..., 2 * K:]
    Hp = np.asarray(H_pred) > 0.5
    Vp, Op = np.asarray(V_pred, np.float64) * Hp, np.asarray(O_pred, np.float64) * Hp
    vr = Vp if v_raw is None else np.asarray(v_raw, np.float64)
    orr = Op if o_raw is None else np.asarray(o_raw, np.float64)
    tp = int((Hp & H).sum())
    fp = int((Hp & ~H).sum())
    fn = int((~Hp & H).sum())
    tn = int((~Hp & ~H).sum())
    prec = tp / max(tp + fp, 1)
    rec = tp / max(tp + fn, 1)
    n_h = max(int(H.sum()), 1)
    return {
        "accuracy": (tp + tn) / max(tp + fp + fn + tn, 1), "precision": prec, "recall": rec,
        "f1": 2 * prec * rec / max(prec + rec, 1e-12),
        "velocity_mse_hits": float(((vr - V) ** 2 * H).sum() / n_h),
        "timing_mse_hits": float(((orr - O) ** 2 * H).sum() / n_h),
        "velocity_mse_all": float(((Vp - V) ** 2).mean()),
        "timing_mse_all": float(((Op - O) ** 2).mean()),
        "hits_true": int(H.sum()), "hits_pred": int(Hp.sum()),
    }



__all__ = ["LossConfig", "DrumLoss", "drum_metrics"]
