"""The judge of apps/voice_vae.py: the digit classifier of apps/spoken_digits.py
(apps/digits/model.py) listens to the resynthesised test recordings, the models'
reconstructions and their generations.

Signals are 1-D float arrays at the model's sample rate; ``Judge.proba`` gives (N, 10) class
probabilities; ``_score`` turns them into the accuracy against the intended digits and the share
of confident answers (top class p >= 0.8). ``judge_run`` gathers judge.json's figures and writes
a few examples of each kind to <run>/samples/.
"""
from __future__ import annotations

import glob
import os
import time

import numpy as np

import nnscratch as nn
from apps.audio import fsdd
from apps.audio.features import extract
from apps.audio.wav import resample
from apps.common.errors import UsageError
from apps.common.runs import write_summary
from apps.digits.model import latest_checkpoint, load_model, predict_proba
from apps.voice.checkpoint import Loaded, latest_run, to_audio
from apps.voice.data import CACHE_DIR, N_DIGITS, load_data, one_hot
from apps.voice.latent_mixture import sample_mixture
from apps.voice.model import MODELS
from apps.voice.plots import write_generated
from apps.voice.summary import build_summary


class Judge:
    """The trained CNN digit classifier (apps/digits/model.py), run on audio through its own
    front end."""

    def __init__(self, path=None):
        path = path or latest_checkpoint(task="digit")
        if path is None or not os.path.exists(path):
            raise UsageError(f"no digit classifier checkpoint{' at ' + path if path else ''}: "
                             "train one with 'python apps/spoken_digits.py train' or pass "
                             "--classifier")
        self.path = path
        self.model, self.hp, self.cfg, self.norm, self.config = load_model(path)
        if self.config.get("task") != "digit":
            raise UsageError(f"{path}: a {self.config.get('task')} classifier, not a digit "
                             "classifier")
        self.test_accuracy = nn.load_checkpoint(path).extra.get("test_accuracy")

    def proba(self, signals, sr: int) -> np.ndarray:
        """(N, 10) class probabilities for N signals at rate sr."""
        if not signals:
            return np.zeros((0, N_DIGITS))
        feats = np.stack([extract(resample(y, sr, self.cfg.sr) if sr != self.cfg.sr else y,
                                  self.cfg) for y in signals])
        return predict_proba(self.model, self.hp, self.norm.transform(feats))

    def describe(self) -> dict:
        return {"checkpoint": self.path, "model": self.hp.model,
                "test_accuracy": self.test_accuracy}


def _score(proba, intended=None, threshold: float = 0.8) -> dict:
    pred, conf = proba.argmax(1), proba.max(1)
    out = {"n": int(len(proba)), "confident_share": round(float((conf >= threshold).mean()), 4),
           "mean_confidence": round(float(conf.mean()), 4),
           "predicted_counts": np.bincount(pred, minlength=N_DIGITS).tolist()}
    if intended is not None:
        intended = np.asarray(intended)
        right = pred == intended
        out["accuracy"] = round(float(right.mean()), 4)
        out["per_digit_accuracy"] = [round(float((pred[intended == d] == d).mean()), 3)
                                     if np.any(intended == d) else None for d in range(N_DIGITS)]
        out["confident_and_right"] = round(float((right & (conf >= threshold)).mean()), 4)
    return out


def _resynth(loaded, images, hops, seed, progress, desc):
    """[(y, info)] for each image through Griffin-Lim, and the mean spectral convergence."""
    it = range(len(images))
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc=desc, unit="clip", leave=False)
    pairs = [to_audio(loaded, images[k], hops[k], seed=seed + k) for k in it]
    sc = (float(np.mean([info["spectral_convergence"] for _, info in pairs])) if pairs
          else float("nan"))
    return pairs, sc


def _judged(judge: Judge, pairs, sc, sr, intended=None) -> dict:
    """The judge's score of resynthesised signals, with their spectral convergence."""
    return {**_score(judge.proba([y for y, _ in pairs], sr), intended),
            "spectral_convergence": round(sc, 4)}


def judge_run(run, judge: Judge, n_per_digit=20, n_prior=200, n_recon=300, spread=0.5, seed=0,
              progress=True, data_root=None, limit=None, cache_dir=CACHE_DIR,
              models=None, log=print) -> dict:
    """Every judge figure for the models of a run (all, or the names in ``models``); writes a
    few examples of each kind to <run>/samples/.

    resynthesised_test_recordings: the test recordings' own spectrograms through Griffin-Lim
        (no model): the ceiling that resynthesis leaves;
    reconstructions: the test spectrograms through each model, then Griffin-Lim;
    centroid_exact / centroid_near: the decoded per-digit centroid of the training codes, and
        n_per_digit points centroid + spread * (the digit's code std) * N(0, I) per digit;
    prior (VAE): n_prior codes z ~ N(0, I): the share whose top class has p >= 0.8;
    prior_mixture (VAE): n_prior codes from the Gaussian mixture fitted to the training codes
        (latent_mixture.py), judged the same way;
    chosen_digit (CVAE): n_per_digit codes z ~ N(0, I) per digit, decoded with that digit.
    """
    rng = np.random.default_rng(seed)
    paths = {n: os.path.join(run, f"{n}.npz") for n in (models or MODELS)
             if os.path.exists(os.path.join(run, f"{n}.npz"))}
    if not paths:
        raise UsageError(f"checkpoint not found: no model checkpoints (<model>.npz) in {run}")
    res = {"classifier": judge.describe(), "threshold": 0.8, "n_per_digit": n_per_digit,
           "spread": spread, "models": {}}
    samples_dir = os.path.join(run, "samples")
    first = Loaded(next(iter(paths.values())))
    data = load_data(data_root, first.cfg, limit=limit, progress=progress, log=log,
                     cache_dir=cache_dir, protocol=first.protocol)
    _, test_idx = fsdd.official_split(data.recs)
    test_idx = test_idx[np.linspace(0, len(test_idx) - 1,
                                    min(n_recon, len(test_idx))).astype(int)]
    y_te, hop_te = data.digits[test_idx], data.hops[test_idx]
    Xte = first.scaler.transform(data.S_db[test_idx])
    ys, sc = _resynth(first, Xte, hop_te, seed, progress, "resynthesised test set")
    resyn = res["resynthesised_test_recordings"] = _judged(judge, ys, sc, first.cfg.sr, y_te)
    log(f"[judge] classifier {judge.path} (its test accuracy on the recordings: "
        f"{judge.test_accuracy})")
    log(f"[judge] test recordings resynthesised from their own spectrograms (no model): accuracy "
        f"{resyn['accuracy']:.4f} (n = {len(test_idx)}, spectral convergence {sc:.3f})")
    digits_rep = np.repeat(np.arange(N_DIGITS), n_per_digit)
    titles = [f"digit {d}" for d in range(N_DIGITS)]
    for name, path in paths.items():
        m = Loaded(path)
        sr, r = m.cfg.sr, {}
        rec = m.model.reconstruct(Xte, one_hot(y_te) if m.model.n_classes else None)
        ys, sc = _resynth(m, rec, hop_te, seed, progress, f"{name} reconstructions")
        r["reconstructions"] = _judged(judge, ys, sc, sr, y_te)
        hops = [m.hop_for(d) for d in digits_rep]
        if not m.model.n_classes:
            cent, std = m.arrays["centroids"], m.arrays["centroid_std"]
            ys, sc = _resynth(m, m.decode(cent), [m.hop_for(d) for d in range(N_DIGITS)], seed,
                              progress, f"{name} centroids")
            r["centroid_exact"] = _judged(judge, ys, sc, sr, np.arange(N_DIGITS))
            noise = rng.standard_normal((len(digits_rep), m.latent))
            imgs = m.decode(cent[digits_rep] + spread * std[digits_rep] * noise)
            ys, sc = _resynth(m, imgs, hops, seed, progress, f"{name} near centroids")
            r["centroid_near"] = _judged(judge, ys, sc, sr, digits_rep)
            write_generated(m, imgs[::n_per_digit], hops[::n_per_digit], samples_dir,
                            f"{name}_centroid", titles, f"{name}: near the digit centroids",
                            signals=ys[::n_per_digit])
            log(f"[judge] {name}: centroids {r['centroid_exact']['accuracy']:.2f} (10), near "
                f"centroids (spread {spread} std) {r['centroid_near']['accuracy']:.4f} "
                f"(n = {len(digits_rep)}); reconstructions "
                f"{r['reconstructions']['accuracy']:.4f}")
        if m.model.variational and not m.model.n_classes:
            priors = {"prior": ("z ~ N(0, I)", "samples from the prior",
                                rng.standard_normal((n_prior, m.latent)))}
            if "mix_means" in m.arrays:
                priors["prior_mixture"] = ("z ~ mixture", "samples from the mixture fitted to "
                                           "the codes", sample_mixture(m.arrays, n_prior, rng))
            for key, (label, title, z) in priors.items():
                imgs = m.decode(z)
                ys, sc = _resynth(m, imgs, [m.hop_for()] * n_prior, seed, progress,
                                  f"{name} {key}")
                r[key] = _judged(judge, ys, sc, sr)
                stem = f"{name}_prior" if key == "prior" else f"{name}_mixture"
                write_generated(m, imgs[:8], [m.hop_for()] * 8, samples_dir, stem,
                                [f"{label} #{k}" for k in range(min(8, n_prior))],
                                f"{name}: {title}", signals=ys[:8])
                log(f"[judge] {name}: {title} with confidence >= 0.8: "
                    f"{r[key]['confident_share']:.4f} (n = {n_prior}; predicted digits "
                    f"{r[key]['predicted_counts']})")
        if m.model.n_classes:
            imgs = m.decode(rng.standard_normal((len(digits_rep), m.latent)), digits_rep)
            ys, sc = _resynth(m, imgs, hops, seed, progress, f"{name} chosen digits")
            r["chosen_digit"] = _judged(judge, ys, sc, sr, digits_rep)
            write_generated(m, imgs[::n_per_digit], hops[::n_per_digit], samples_dir,
                            f"{name}_digit", titles, f"{name}: z ~ N(0, I), chosen digit",
                            signals=ys[::n_per_digit])
            log(f"[judge] {name}: chosen digit recognised {r['chosen_digit']['accuracy']:.4f} "
                f"(n = {len(digits_rep)}), confident share "
                f"{r['chosen_digit']['confident_share']:.4f}")
        res["models"][name] = r
    return res


def cmd_judge(args, log=print) -> int:
    """The `judge` command (and the last step of `train`): judge.json, and its figures added to
    the run's summary.json."""
    t0 = time.perf_counter()
    run = args.run or latest_run()
    judge = Judge(args.classifier)
    res = judge_run(run, judge, n_per_digit=args.n_per_digit, n_prior=args.n_prior,
                    n_recon=args.n_recon, spread=args.spread, seed=args.seed,
                    progress=args.progress, data_root=getattr(args, "data", None),
                    limit=getattr(args, "limit", None),
                    models=args.models if args.command == "judge" else None, log=log)
    res["seconds"] = round(time.perf_counter() - t0, 1)
    path = write_summary(run, res, name="judge.json")
    summary = build_summary(run)
    summary["judge"] = res
    summary["files"] = sorted(set(summary.get("files", [])) | {path} |
                              set(glob.glob(os.path.join(run, "samples", "*"))))
    write_summary(run, summary)
    log(f"[judge] wrote {path} and updated summary.json ({res['seconds']:.0f} s)")
    return 0
