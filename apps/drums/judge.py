"""The learned judge (seed 001, section 5.4): a small convolutional discriminator that tells real
drums from generated ones, given the music they accompany. Math and backward:
docs/derivations/drum_judge.md (numbers cited as ``# (n)``).

Shapes: B windows, T steps, K = 9 drum classes, E input streams (piano, guitar, bass)::

    f = [drums (B, T, 3K or K) | onsets (B, T, E) | bar position (B, T, 16)]   (1)
    a1 = ReLU(Conv1D_1(f))        kernel 5, stride 1        (B, C, T)        (2)
    a2 = ReLU(Conv1D_2(a1))       kernel 5, stride 2        (B, C, T/2)      (2)
    a3 = ReLU(Conv1D_3(a2))       kernel 3, stride 2        (B, C, T/4)      (2)
    g  = mean_t a3                                          (B, C)           (3)
    s  = Dense(g)                 the judge's score, a logit of "real"  (B,)  (4)

trained with the binary cross-entropy (5) on the training songs only: real windows (label 1)
against as many fakes (label 0) drawn from the kinds it is given (the model's free-running
drums, the drum machine, real drums of another song). ``features='h'`` judges the hits alone
(no velocity, no timing): whether the pattern is right, apart from the groove.

``roc_auc(real_scores, fake_scores)``: the area under the ROC curve (6), the probability that
a real window scores above a fake one (ties count one half); 0.5 means the judge cannot tell.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import numpy as np

import nnscratch as nn
from nnscratch.functions import loss as LF
from nnscratch.functions.base import Context
from nnscratch.layers.conv import Conv1D

from . import groove
from .data import APP

K = groove.N_CLASSES


@dataclass
class JudgeConfig:
    features: str = "hvo"     # 'hvo': hits, velocities and offsets; 'h': hits only
    streams: int = 3          # E: input streams whose onsets the judge hears
    channels: int = 32

    @property
    def drum_channels(self) -> int:
        return 3 * K if self.features == "hvo" else K

    @property
    def in_channels(self) -> int:
        return self.drum_channels + self.streams + groove.STEPS_PER_BAR


def onset_density(x) -> np.ndarray:
    """Input rolls (B, E, T, F) or a list of E arrays (B, T, F) -> (B, T, E): each stream's
    onsets at each step, min(n, 4) / 4 with n the number of notes starting there, whatever
    their velocity (the drum model's a_t)."""
    xs = [x[:, i] for i in range(x.shape[1])] if not isinstance(x, (list, tuple)) else list(x)
    return np.stack([np.minimum((np.asarray(a) > 0).sum(axis=-1), 4) / 4.0 for a in xs],
                    axis=-1).astype(np.float32)


def judge_features(hvo, onsets, features: str = "hvo") -> np.ndarray:
    """(1): [drums | onsets | one-hot bar position], (B, T, F) float32."""
    hvo = np.asarray(hvo, np.float32)
    B, T, _ = hvo.shape
    drums = hvo if features == "hvo" else hvo[..., :K]
    pos = np.eye(groove.STEPS_PER_BAR, dtype=np.float32)[np.arange(T) % groove.STEPS_PER_BAR]
    return np.concatenate([drums, np.asarray(onsets, np.float32),
                           np.broadcast_to(pos, (B, T, groove.STEPS_PER_BAR))], axis=-1)


class DrumJudge(nn.Layer):
    """``forward(f (B, T, F)) -> s (B,)`` the logits of "real" (2)-(4);
    ``backward(ds (B,)) -> df (B, T, F)`` (7)-(10), adding into the parameters' gradients."""

    def __init__(self, cfg: JudgeConfig | None = None):
        super().__init__()
        cfg = cfg or JudgeConfig()
        if cfg.features not in ("hvo", "h"):
            raise ValueError(f"judge features must be 'hvo' or 'h', got {cfg.features!r}")
        self.cfg = cfg
        C = cfg.channels
        self.conv1 = Conv1D(cfg.in_channels, C, 5, padding=2, init="he_uniform")
        self.act1 = nn.ReLU()
        self.conv2 = Conv1D(C, C, 5, stride=2, padding=2, init="he_uniform")
        self.act2 = nn.ReLU()
        self.conv3 = Conv1D(C, C, 3, stride=2, padding=1, init="he_uniform")
        self.act3 = nn.ReLU()
        self.out = nn.Dense(C, 1)

    def forward(self, f):
        xp = nn.get_array_module(self.out.weight.data)
        f = xp.asarray(f, dtype=self.out.weight.dtype)
        if f.ndim != 3 or f.shape[2] != self.cfg.in_channels:
            raise ValueError(f"{self.label}: expected features (batch, time, "
                             f"{self.cfg.in_channels}), got {tuple(f.shape)}")
        a = self.act1(self.conv1(xp.ascontiguousarray(f.transpose(0, 2, 1))))      # (2)
        a = self.act2(self.conv2(a))                                                 # (2)
        a = self.act3(self.conv3(a))                                                 # (2)
        self.save_context(Context(steps=a.shape[2]))
        g = a.mean(axis=2)                                                           # (3)
        return self.out(g)[:, 0]                                                     # (4)

    def backward(self, ds):
        ctx = self.pop_context()
        ctx.consume(self.label)
        xp = nn.get_array_module(self.out.weight.data)
        dg = self.out.backward(xp.asarray(ds, dtype=self.out.weight.dtype)[:, None])   # (7)
        da = xp.repeat(dg[:, :, None] / ctx.steps, ctx.steps, axis=2)                  # (8)
        da = self.conv3.backward(self.act3.backward(da))                               # (9)
        da = self.conv2.backward(self.act2.backward(da))                               # (9)
        df = self.conv1.backward(self.act1.backward(da))                               # (9)
        return None if df is None else xp.ascontiguousarray(df.transpose(0, 2, 1))  # (10)

    def score(self, f, batch: int = 512) -> np.ndarray:
        """Logits of "real" for features (N, T, F), without saving anything."""
        was = self.training
        self.eval()
        try:
            with nn.no_grad():
                return np.concatenate([nn.to_cpu(self.forward(f[s:s + batch]))
                                       for s in range(0, len(f), batch)]) if len(f) else \
                    np.zeros(0, np.float32)
        finally:
            self.train(was)


def bce_loss(s, labels):
    """(5): mean binary cross-entropy of logits s (B,) against labels (B,); returns (loss,
    ds)."""
    ctx = Context()
    loss = LF.BCEWithLogits.forward(ctx, s, nn.get_array_module(s).asarray(labels, s.dtype))
    return float(loss), LF.BCEWithLogits.backward(ctx)[0]


def roc_auc(real, fake) -> float:
    """(6): P(score(real) > score(fake)) + P(equal) / 2, from the ranks of all the scores
    (the Mann-Whitney statistic); NaN when either side is empty."""
    real, fake = np.asarray(real, np.float64).ravel(), np.asarray(fake, np.float64).ravel()
    if not len(real) or not len(fake):
        return float("nan")
    s = np.concatenate([real, fake])
    uniq, inv, counts = np.unique(s, return_inverse=True, return_counts=True)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    avg_rank = first + (counts + 1) / 2.0                   # ranks 1..n, ties share their mean
    r = avg_rank[inv][:len(real)].sum()
    return float((r - len(real) * (len(real) + 1) / 2.0) / (len(real) * len(fake)))


# ----------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------
def train_judge(cfg: JudgeConfig, real: dict, fakes: dict, val_real: dict, val_fakes: dict,
                epochs: int = 8, batch: int = 64, lr: float = 1e-3, seed: int = 0,
                log=print) -> tuple:
    """Train a judge on real windows against fakes; keep the epoch with the lowest validation
    loss.

    ``real``: {'hvo': (N, T, 27), 'onsets': (N, T, E)}; ``fakes``: {kind: {'hvo', 'onsets'}},
    each kind with its own windows. Each batch holds ``batch / 2`` real windows and as many
    fakes, the kinds in turn. Returns (judge, report) with the validation AUC of real against
    each kind and the per-epoch losses.
    """
    nn.manual_seed(seed)
    judge = DrumJudge(cfg)
    opt = nn.optim.Adam(judge.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    kinds = sorted(fakes)
    feats = {k: judge_features(v["hvo"], v["onsets"], cfg.features) for k, v in fakes.items()}
    real_f = judge_features(real["hvo"], real["onsets"], cfg.features)
    val_f = {k: judge_features(v["hvo"], v["onsets"], cfg.features) for k, v in val_fakes.items()}
    val_real_f = judge_features(val_real["hvo"], val_real["onsets"], cfg.features)
    half = max(batch // 2, 1)
    n_batches = max(len(real_f) // half, 1)
    best, best_state, history = float("inf"), None, []
    for epoch in range(epochs):
        order = rng.permutation(len(real_f))
        tot = 0.0
        for b in range(n_batches):
            idx = order[b * half:(b + 1) * half]
            kind_of = rng.integers(0, len(kinds), len(idx))
            fake = np.stack([feats[kinds[k]][rng.integers(len(feats[kinds[k]]))]
                             for k in kind_of])
            f = np.concatenate([real_f[idx], fake])
            labels = np.concatenate([np.ones(len(idx)), np.zeros(len(fake))])
            s = judge(f)
            loss, ds = bce_loss(s, labels)
            judge.backward(ds)
            nn.optim.clip_grad_norm(judge.parameters(), 5.0)
            opt.step()
            opt.zero_grad()
            tot += loss
        vr = judge.score(val_real_f)
        vs = {k: judge.score(v) for k, v in val_f.items()}
        val_loss = float(np.mean([_bce_np(np.concatenate([vr, s]), np.concatenate(
            [np.ones(len(vr)), np.zeros(len(s))])) for s in vs.values()]))
        aucs = {k: round(roc_auc(vr, s), 4) for k, s in vs.items()}
        history.append({"epoch": epoch + 1, "train_loss": round(tot / n_batches, 5),
                        "val_loss": round(val_loss, 5), "val_auc": aucs})
        log(f"judge ({cfg.features}) epoch {epoch + 1}: train BCE {tot / n_batches:.4f}, val "
            f"BCE {val_loss:.4f}, val AUC real vs "
            + ", ".join(f"{k} {v:.3f}" for k, v in aucs.items()))
        if val_loss < best:
            best, best_state = val_loss, judge.state_dict()
    judge.load_state_dict(best_state)
    judge.eval()
    best_epoch = min(history, key=lambda h: h["val_loss"])
    return judge, {"features": cfg.features, "epochs": epochs, "best_epoch": best_epoch["epoch"],
                   "val_auc": best_epoch["val_auc"], "history": history,
                   "train_windows": {"real": len(real_f), **{k: len(v) for k, v in feats.items()}}}


def _bce_np(s, y) -> float:
    s = np.asarray(s, np.float64)
    return float(np.mean((1 - y) * s + np.logaddexp(0, -s)))


def save_judge(path: str, judge: DrumJudge, report: dict) -> str:
    nn.save_checkpoint(path, judge, None, config={"app": APP, "task": "judge",
                                                  "judge": asdict(judge.cfg)},
                       extra={"report": report})
    return path


def load_judge(path: str) -> tuple:
    """(DrumJudge in eval mode, its training report) from a judge .npz of this app."""
    ck = nn.load_checkpoint(path)
    if ck.config.get("app") != APP or ck.config.get("task") != "judge":
        raise nn.CheckpointError(f"{path}: not a {APP} judge checkpoint")
    judge = DrumJudge(JudgeConfig(**ck.config["judge"]))
    judge.load_state_dict(ck.model)
    judge.eval()
    return judge, ck.extra.get("report", {})


def judge_path(checkpoint: str, features: str = "hvo") -> str:
    """Where ``train`` writes a run's judges: judge.npz (H, V, O) and judge_hits.npz (H)."""
    name = "judge.npz" if features == "hvo" else "judge_hits.npz"
    return os.path.join(os.path.dirname(os.path.abspath(checkpoint)), name)


__all__ = ["JudgeConfig", "DrumJudge", "onset_density", "judge_features", "bce_loss", "roc_auc",
           "train_judge", "save_judge", "load_judge", "judge_path"]
