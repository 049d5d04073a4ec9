"""The judge of apps/voice_vae.py: the digit classifier of apps/spoken_digits.py listens to the
resynthesised test recordings, the models' reconstructions and their generations.

Signals are 1-D float arrays at the model's sample rate; ``Judge.proba`` gives (N, 10) class
probabilities; ``_score`` turns them into the accuracy against the intended digits and the share
of confident answers (top class p >= 0.8). ``judge_run`` writes judge.json's figures and a few
examples of each kind to <run>/samples/.
"""
from __future__ import annotations

import glob
import json
import os
import time

import numpy as np

import nnscratch as nn
from apps.audio import fsdd
from apps.audio.features import extract
from apps.voice_data import (
    DEFAULT_OUT_ROOT, MODELS, N_DIGITS, Loaded, UsageError, latest_run, load_data, to_audio,
)
from apps.voice_models import one_hot
from apps.voice_plots import write_generated
from apps.voice_train import build_summary


class Judge:
    """The trained CNN digit classifier, run on audio through its own front end."""

    def __init__(self, path=None):
        from apps import spoken_digits as sd  # noqa: PLC0415

        path = path or sd.latest_checkpoint(task="digit")
        if path is None or not os.path.exists(path):
            raise UsageError(f"no digit classifier checkpoint{' at ' + path if path else ''}: train one "
                             "with 'python apps/spoken_digits.py train' or pass --classifier")
        self.path = path
        self.model, self.hp, self.cfg, self.norm, self.config = sd.load_model(path)
        if self.config.get("task") != "digit":
            raise UsageError(f"{path}: a {self.config.get('task')} classifier, not a digit classifier")
        self.test_accuracy = nn.load_checkpoint(path).extra.get("test_accuracy")
        self._predict = sd.predict_proba

    def proba(self, signals, sr: int) -> np.ndarray:
        """(N, 10) class probabilities for N signals at rate sr."""
        from apps.audio.wav import resample  # noqa: PLC0415

        if not signals:
            return np.zeros((0, N_DIGITS))
        feats = np.stack([extract(resample(y, sr, self.cfg.sr) if sr != self.cfg.sr else y, self.cfg)
                          for y in signals])
        return self._predict(self.model, self.hp, self.norm.transform(feats))

    def describe(self) -> dict:
        return {"checkpoint": self.path, "model": self.hp.model, "test_accuracy": self.test_accuracy}


def _score(proba, intended=None, threshold: float = 0.8) -> dict:
    pred, conf = proba.argmax(1), proba.max(1)
    out = {"n": int(len(proba)), "confident_share": round(float((conf >= threshold).mean()), 4),
           "mean_confidence": round(float(conf.mean()), 4),
           "predicted_counts": np.bincount(pred, minlength=N_DIGITS).tolist()}
    if intended is not None:
        intended = np.asarray(intended)
        out["accuracy"] = round(float((pred == intended).mean()), 4)
        out["per_digit_accuracy"] = [round(float((pred[intended == d] == d).mean()), 3)
                                     if np.any(intended == d) else None for d in range(N_DIGITS)]
        out["confident_and_right"] = round(float(((pred == intended) & (conf >= threshold)).mean()), 4)
    return out


def _resynth(loaded, images, hops, seed, progress, desc):
    it = range(len(images))
    if progress:
        from tqdm import tqdm  # noqa: PLC0415

        it = tqdm(it, desc=desc, unit="clip", leave=False)
    pairs = [to_audio(loaded, images[k], hops[k], seed=seed + k) for k in it]
    sc = float(np.mean([info["spectral_convergence"] for _, info in pairs])) if pairs else float("nan")
    return pairs, sc


def _signals(pairs):
    return [y for y, _ in pairs]


def judge_run(run, judge: Judge, n_per_digit=20, n_prior=200, n_recon=300, spread=0.5, seed=0,
              progress=True, data_root=None, limit=None, cache_dir=os.path.join(DEFAULT_OUT_ROOT, ".cache"),
              models=None, log=print) -> dict:
    """Every judge figure for the models of a run (all, or the names in ``models``); writes a
    few examples of each kind to <run>/samples/.

    resynthesised_test_recordings: the test recordings' own spectrograms through Griffin-Lim
        (no model): the ceiling that resynthesis leaves;
    reconstructions: the test spectrograms through each model, then Griffin-Lim;
    centroid_exact / centroid_near: the decoded per-digit centroid of the training codes, and
        n_per_digit points centroid + spread * (the digit's code std) * N(0, I) per digit;
    prior (VAE): n_prior codes z ~ N(0, I): the share whose top class has p >= 0.8;
    chosen_digit (CVAE): n_per_digit codes z ~ N(0, I) per digit, decoded with that digit.
    """
    rng = np.random.default_rng(seed)
    paths = {n: os.path.join(run, f"{n}.npz") for n in (models or MODELS)
             if os.path.exists(os.path.join(run, f"{n}.npz"))}
    if not paths:
        raise UsageError(f"checkpoint not found: no model checkpoints (<model>.npz) in {run}")
    res = {"classifier": judge.describe(), "threshold": 0.8, "n_per_digit": n_per_digit, "spread": spread,
           "models": {}}
    samples_dir = os.path.join(run, "samples")
    first = Loaded(next(iter(paths.values())))
    data = load_data(data_root, first.cfg, limit=limit, progress=progress, log=log, cache_dir=cache_dir,
                     protocol=first.protocol)
    _, test_idx = fsdd.official_split(data.recs)
    test_idx = test_idx[np.linspace(0, len(test_idx) - 1, min(n_recon, len(test_idx))).astype(int)]
    Xte = first.scaler.transform(data.S_db[test_idx])
    ys, sc = _resynth(first, Xte, data.hops[test_idx], seed, progress, "resynthesised test set")
    res["resynthesised_test_recordings"] = {**_score(judge.proba(_signals(ys), first.cfg.sr), data.digits[test_idx]),
                                            "spectral_convergence": round(sc, 4)}
    log(f"[judge] classifier {judge.path} (its test accuracy on the recordings: {judge.test_accuracy})")
    log(f"[judge] test recordings resynthesised from their own spectrograms (no model): accuracy "
        f"{res['resynthesised_test_recordings']['accuracy']:.4f} (n = {len(test_idx)}, spectral "
        f"convergence {sc:.3f})")
    digits_rep = np.repeat(np.arange(N_DIGITS), n_per_digit)
    for name, path in paths.items():
        m = Loaded(path)
        r = {}
        c_te = data.digits[test_idx] if m.model.n_classes else None
        rec = m.model.reconstruct(Xte, one_hot(c_te) if c_te is not None else None)
        ys, sc = _resynth(m, rec, data.hops[test_idx], seed, progress, f"{name} reconstructions")
        r["reconstructions"] = {**_score(judge.proba(_signals(ys), m.cfg.sr), data.digits[test_idx]),
                                "spectral_convergence": round(sc, 4)}
        hops = [m.hop_for(d) for d in digits_rep]
        if not m.model.n_classes:
            cent, std = m.arrays["centroids"], m.arrays["centroid_std"]
            ys, sc = _resynth(m, m.decode(cent), [m.hop_for(d) for d in range(N_DIGITS)], seed, progress,
                              f"{name} centroids")
            r["centroid_exact"] = {**_score(judge.proba(_signals(ys), m.cfg.sr), np.arange(N_DIGITS)),
                                   "spectral_convergence": round(sc, 4)}
            z = cent[digits_rep] + spread * std[digits_rep] * rng.standard_normal((len(digits_rep), m.latent))
            imgs = m.decode(z)
            ys, sc = _resynth(m, imgs, hops, seed, progress, f"{name} near centroids")
            r["centroid_near"] = {**_score(judge.proba(_signals(ys), m.cfg.sr), digits_rep),
                                  "spectral_convergence": round(sc, 4)}
            write_generated(m, imgs[::n_per_digit], hops[::n_per_digit], samples_dir, f"{name}_centroid",
                            [f"digit {d}" for d in range(N_DIGITS)], f"{name}: near the digit centroids",
                            signals=ys[::n_per_digit])
            log(f"[judge] {name}: centroids {r['centroid_exact']['accuracy']:.2f} (10), near centroids "
                f"(spread {spread} std) {r['centroid_near']['accuracy']:.4f} (n = {len(digits_rep)}); "
                f"reconstructions {r['reconstructions']['accuracy']:.4f}")
        if m.model.variational and not m.model.n_classes:
            z = rng.standard_normal((n_prior, m.latent))
            imgs = m.decode(z)
            ys, sc = _resynth(m, imgs, [m.hop_for()] * n_prior, seed, progress, f"{name} prior")
            r["prior"] = {**_score(judge.proba(_signals(ys), m.cfg.sr)), "spectral_convergence": round(sc, 4)}
            write_generated(m, imgs[:8], [m.hop_for()] * 8, samples_dir, f"{name}_prior",
                            [f"z ~ N(0, I) #{k}" for k in range(min(8, n_prior))],
                            f"{name}: samples from the prior", signals=ys[:8])
            log(f"[judge] {name}: prior samples with confidence >= 0.8: {r['prior']['confident_share']:.4f} "
                f"(n = {n_prior}; predicted digits {r['prior']['predicted_counts']})")
        if m.model.n_classes:
            z = rng.standard_normal((len(digits_rep), m.latent))
            imgs = m.decode(z, digits_rep)
            ys, sc = _resynth(m, imgs, hops, seed, progress, f"{name} chosen digits")
            r["chosen_digit"] = {**_score(judge.proba(_signals(ys), m.cfg.sr), digits_rep),
                                 "spectral_convergence": round(sc, 4)}
            write_generated(m, imgs[::n_per_digit], hops[::n_per_digit], samples_dir, f"{name}_digit",
                            [f"digit {d}" for d in range(N_DIGITS)], f"{name}: z ~ N(0, I), chosen digit",
                            signals=ys[::n_per_digit])
            log(f"[judge] {name}: chosen digit recognised {r['chosen_digit']['accuracy']:.4f} "
                f"(n = {len(digits_rep)}), confident share {r['chosen_digit']['confident_share']:.4f}")
        res["models"][name] = r
    return res


def cmd_judge(args, log=print) -> int:
    t0 = time.perf_counter()
    run = args.run or latest_run()
    judge = Judge(args.classifier)
    res = judge_run(run, judge, n_per_digit=args.n_per_digit, n_prior=args.n_prior, n_recon=args.n_recon,
                    spread=args.spread, seed=args.seed, progress=args.progress,
                    data_root=getattr(args, "data", None), limit=getattr(args, "limit", None),
                    models=args.models if args.command == "judge" else None, log=log)
    res["seconds"] = round(time.perf_counter() - t0, 1)
    path = os.path.join(run, "judge.json")
    with open(path, "w") as f:
        json.dump(res, f, indent=2)
    summary = build_summary(run)
    summary["judge"] = res
    summary["files"] = sorted(set(summary.get("files", [])) | {path} |
                              set(glob.glob(os.path.join(run, "samples", "*"))))
    with open(os.path.join(run, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    log(f"[judge] wrote {path} and updated summary.json ({res['seconds']:.0f} s)")
    return 0
