"""The judges of apps/voice_vae.py: the digit classifier and the speaker classifier of
apps/spoken_digits.py (apps/digits/model.py) listen to the resynthesised test recordings, the
models' reconstructions and their generations. Neither shares a weight with the models judged.

Signals are 1-D float arrays at the model's sample rate; ``Judge.proba`` gives (N, classes)
probabilities; ``_score`` turns them into the accuracy against the intended labels and the share
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
from apps.digits.model import latest_checkpoint, load_model, predict_proba, prepare
from apps.voice.checkpoint import Loaded, latest_run, to_audio
from apps.voice.data import CACHE_DIR, N_DIGITS, load_data, pair_grid
from apps.voice.latent_mixture import sample_mixture
from apps.voice.model import MODELS
from apps.voice.phase import PhaseBank
from apps.voice.plots import write_generated
from apps.voice.summary import build_summary

TRAIN_COMMAND = {"digit": "python apps/spoken_digits.py train",
                 "speaker": "python apps/spoken_digits.py speakers"}


class Judge:
    """A trained classifier of apps/spoken_digits.py (task 'digit' or 'speaker'), run on audio
    through its own front end. ``classes``: its class names (digits '0'-'9', or speakers)."""

    def __init__(self, path=None, task: str = "digit"):
        path = path or latest_checkpoint(task=task)
        if path is None or not os.path.exists(path):
            raise UsageError(f"no {task} classifier checkpoint{' at ' + path if path else ''}: "
                             f"train one with '{TRAIN_COMMAND[task]}' or pass "
                             f"--{'classifier' if task == 'digit' else 'speaker-classifier'}")
        self.path, self.task = path, task
        try:
            self.model, self.hp, self.cfg, self.norm, self.config = load_model(path)
        except nn.CheckpointError as exc:
            raise UsageError(str(exc)) from None
        if self.config.get("task") != task:
            raise UsageError(f"{path}: a {self.config.get('task')} classifier, not a {task} "
                             "classifier")
        self.classes = [str(c) for c in self.config["classes"]]
        self.test_accuracy = nn.load_checkpoint(path).extra.get("test_accuracy")

    def proba(self, signals, sr: int) -> np.ndarray:
        """(N, classes) probabilities for N signals at rate sr."""
        if not signals:
            return np.zeros((0, len(self.classes)))
        feats = np.stack([extract(resample(y, sr, self.cfg.sr) if sr != self.cfg.sr else y,
                                  self.cfg) for y in signals])
        return predict_proba(self.model, self.hp, prepare(self.hp, self.norm, feats))

    def labels(self, names) -> np.ndarray:
        """(N,) class indexes of this judge for (N,) names (speakers); -1 for a name it does
        not know (never right)."""
        pos = {c: k for k, c in enumerate(self.classes)}
        return np.array([pos.get(str(n), -1) for n in names], dtype=np.int64)

    def describe(self) -> dict:
        return {"checkpoint": self.path, "task": self.task, "model": self.hp.model,
                "classes": self.classes, "test_accuracy": self.test_accuracy}


def optional_judge(path=None, task: str = "speaker", log=print):
    """The classifier of ``task``, or None with one line saying how to get one (its figures
    are then left out). A checkpoint asked for by name must load: a wrong file is an error."""
    try:
        return Judge(path, task=task)
    except UsageError as exc:
        if path:
            raise
        log(f"note: no {task} judge ({exc}); the {task}s are not judged")
        return None


def _score(proba, intended=None, threshold: float = 0.8, per: str = "digit") -> dict:
    """Accuracy against the intended classes (N,) and the share of confident answers; ``per``
    names the classes in the per-class list (per_digit_accuracy, per_speaker_accuracy)."""
    n_classes = proba.shape[1] if proba.ndim == 2 and proba.shape[1] else N_DIGITS
    pred, conf = proba.argmax(1), proba.max(1)
    out = {"n": int(len(proba)), "confident_share": round(float((conf >= threshold).mean()), 4),
           "mean_confidence": round(float(conf.mean()), 4),
           "predicted_counts": np.bincount(pred, minlength=n_classes).tolist()}
    if intended is not None:
        intended = np.asarray(intended)
        right = pred == intended
        out["accuracy"] = round(float(right.mean()), 4)
        out[f"per_{per}_accuracy"] = [round(float((pred[intended == d] == d).mean()), 3)
                                      if np.any(intended == d) else None
                                      for d in range(n_classes)]
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


def heard(digit_proba, speaker_proba=None, speaker_classes=()) -> list[str]:
    """One line per signal of what the judges heard: 'heard 7 (0.99), jackson (0.97)'."""
    out = []
    for k, p in enumerate(digit_proba):
        line = f"heard {int(p.argmax())} ({p.max():.2f})"
        if speaker_proba is not None:
            q = speaker_proba[k]
            line += f", {speaker_classes[int(q.argmax())]} ({q.max():.2f})"
        out.append(line)
    return out


def _share_by_pair(right, pair_digit, pair_speaker, speakers) -> list[list[float]]:
    """(10, speakers) share of right answers for each digit x speaker pair."""
    return [[round(float(right[(pair_digit == d) & (pair_speaker == s)].mean()), 3)
             for s in speakers] for d in range(N_DIGITS)]


def _mse_rows(A, B):
    """(len(A), len(B)) mean squared differences between flattened images."""
    A, B = A.reshape(len(A), -1).astype(np.float64), B.reshape(len(B), -1).astype(np.float64)
    return ((A * A).sum(1)[:, None] + (B * B).sum(1)[None] - 2 * A @ B.T) / A.shape[1]


def _spread(A) -> float:
    """Mean squared difference over the distinct pairs of images in A (0 for fewer than 2)."""
    if len(A) < 2:
        return 0.0
    return float(_mse_rows(A, A)[np.triu_indices(len(A), 1)].mean())


def novelty(m: Loaded, imgs, pair_d, pair_s, data) -> dict:
    """How new and how varied a conditional model's words are, against the recordings of the
    same digit and voice (the simplest alternative a user has: play one of them).

    nearest_training_mse: each word's mean squared difference to the closest training image
        of its pair, beside the same for the test recordings (a new recording's distance);
    within_pair_spread: the mean squared difference between two words of one pair, beside
        that between two training recordings of the pair (1 x: as varied as the speaker).
    """
    train_idx, test_idx = fsdd.official_split(data.recs)
    X = m.scaler.transform(data.S_db)
    near_gen, near_test, spread_gen, spread_real = [], [], [], []
    for d in range(N_DIGITS):
        for s in m.speakers:
            tr = train_idx[(data.digits[train_idx] == d) & (data.speakers[train_idx] == s)]
            te = test_idx[(data.digits[test_idx] == d) & (data.speakers[test_idx] == s)]
            mine = imgs[(pair_d == d) & (pair_s == s)]
            if not len(tr) or not len(mine):
                continue
            near_gen += _mse_rows(mine, X[tr]).min(1).tolist()
            if len(te):
                near_test += _mse_rows(X[te], X[tr]).min(1).tolist()
            spread_gen.append(_spread(mine))
            spread_real.append(_spread(X[tr]))
    out = {"nearest_training_mse": {
        "generated": round(float(np.mean(near_gen)), 5),
        "test_recordings": round(float(np.mean(near_test)), 5) if near_test else None}}
    if len(imgs) > len(spread_gen):  # at least two words in some pair
        g, r = float(np.mean(spread_gen)), float(np.mean(spread_real))
        out["within_pair_spread"] = {"generated": round(g, 5), "training_recordings": round(r, 5),
                                     "ratio": round(g / r, 3) if r else None}
    return out


def judge_pairs(m: Loaded, judge: Judge, speaker_judge, n_per_pair, rng, seed, progress,
                samples_dir, log=print, data=None) -> dict:
    """A model conditioned on digit and voice: n_per_pair codes z ~ N(0, I) for each of the
    10 x speakers pairs, decoded with that pair, each at the pair's median hop; the digit judge
    and the speaker judge listen; with the recordings (``data``), ``novelty`` compares the
    words with them. Writes one sample per pair to samples/ (a 10 x speakers sheet)."""
    name, sr = m.name, m.cfg.sr
    pair_d, pair_s = pair_grid(m.speakers, n_per_pair)
    imgs = m.decode(rng.standard_normal((len(pair_d), m.latent)), pair_d, pair_s)
    hops = [m.hop_for(d, s) for d, s in zip(pair_d, pair_s)]
    ys, sc = _resynth(m, imgs, hops, seed, progress, f"{name} chosen digit and voice")
    signals = [y for y, _ in ys]
    dp = judge.proba(signals, sr)
    r = {"chosen_digit": {**_score(dp, pair_d), "spectral_convergence": round(sc, 4)},
         "pairs": {"n_pairs": N_DIGITS * len(m.speakers), "n_per_pair": int(n_per_pair),
                   "speakers": m.speakers}}
    digit_right = dp.argmax(1) == pair_d
    r["pairs"]["digit_right_by_pair"] = _share_by_pair(digit_right, pair_d, pair_s, m.speakers)
    sp = None
    line = (f"[judge] {name}: chosen digit recognised {r['chosen_digit']['accuracy']:.4f}")
    if speaker_judge is not None:
        sp = speaker_judge.proba(signals, sr)
        r["chosen_speaker"] = _score(sp, speaker_judge.labels(pair_s), per="speaker")
        voice_right = sp.argmax(1) == speaker_judge.labels(pair_s)
        r["pairs"]["speaker_right_by_pair"] = _share_by_pair(voice_right, pair_d, pair_s,
                                                             m.speakers)
        r["both_right"] = round(float((digit_right & voice_right).mean()), 4)
        line += (f", chosen speaker {r['chosen_speaker']['accuracy']:.4f}, both "
                 f"{r['both_right']:.4f}")
    log(line + f" (n = {len(pair_d)}: {r['pairs']['n_pairs']} pairs x {n_per_pair})")
    if data is not None:
        r["novelty"] = nov = novelty(m, imgs, pair_d, pair_s, data)
        near = nov["nearest_training_mse"]
        line = (f"[judge] {name}: MSE to the nearest training recording of the pair "
                f"{near['generated']:.5f} (test recordings: {near['test_recordings']})")
        if "within_pair_spread" in nov:
            spread = nov["within_pair_spread"]
            line += (f"; spread within a pair {spread['generated']:.5f}, "
                     f"{spread['ratio']} x the training recordings'")
        log(line)
    first = np.arange(0, len(pair_d), n_per_pair)  # one sample of each pair
    titles = [f"{d} {s}\n{h}" for d, s, h in zip(
        pair_d[first], pair_s[first],
        heard(dp[first], None if sp is None else sp[first],
              speaker_judge.classes if speaker_judge else ()))]
    write_generated(m, imgs[first], [hops[k] for k in first], samples_dir, f"{name}_pairs",
                    titles, f"{name}: z ~ N(0, I), chosen digit (rows) and voice (columns)",
                    signals=[ys[k] for k in first], cols=len(m.speakers))
    return r


PHASE_VARIANTS = (("random", 32), ("random", 100), ("recording", 32), ("recording", 100))


def phase_study(m: Loaded, judge: Judge, speaker_judge, bank: PhaseBank, n_per_pair, rng, seed,
                progress, log=print) -> dict:
    """Which initial phase, and how many Griffin-Lim iterations, the judges and the spectral
    convergence prefer for a conditional model's words: n_per_pair codes z ~ N(0, I) per digit
    (x voice) pair, each decoded once, then resynthesised four ways (PHASE_VARIANTS: a random
    or a recording's phase, 32 or 100 iterations), all at the hop of the recording the phase
    comes from (phase.py), so that only the phase and the iterations differ."""
    voices = m.speakers or [None]
    pair_d, pair_s = pair_grid(voices, n_per_pair)
    imgs = m.decode(rng.standard_normal((len(pair_d), m.latent)), pair_d,
                    pair_s if m.speakers else None)
    source = [bank.nearest(img, d, s) for img, d, s in zip(imgs, pair_d, pair_s)]
    phases = [bank.phase(k) for k in source]
    out = {"n": int(len(pair_d)), "phase_sources": len(set(source)), "variants": {}}
    for init, n_iter in PHASE_VARIANTS:
        it = range(len(imgs))
        if progress:
            from tqdm import tqdm

            it = tqdm(it, desc=f"{m.name} phase {init} x {n_iter}", unit="clip", leave=False)
        ys = [to_audio(m, imgs[i], phases[i][0], seed=seed + i, n_iter=n_iter,
                       init=phases[i][1] if init == "recording" else "random") for i in it]
        signals = [y for y, _ in ys]
        r = {"init": init, "n_iter": n_iter,
             "spectral_convergence": round(float(np.mean([info["spectral_convergence"]
                                                          for _, info in ys])), 4),
             "digit": _score(judge.proba(signals, m.cfg.sr), pair_d)}
        line = (f"[judge] {m.name} phase {init}, {n_iter} iterations: digit "
                f"{r['digit']['accuracy']:.4f}")
        if speaker_judge is not None and m.speakers:
            r["speaker"] = _score(speaker_judge.proba(signals, m.cfg.sr),
                                  speaker_judge.labels(pair_s), per="speaker")
            line += f", speaker {r['speaker']['accuracy']:.4f}"
        log(f"{line}, spectral convergence {r['spectral_convergence']:.4f} (n = {len(imgs)})")
        out["variants"][f"{init}_{n_iter}"] = r
    return out


def judge_run(run, judge: Judge, n_per_digit=20, n_prior=200, n_recon=300, spread=0.5, seed=0,
              progress=True, data_root=None, limit=None, cache_dir=CACHE_DIR,
              models=None, log=print, speaker_judge: Judge | None = None,
              n_per_pair: int = 5, phase_per_pair: int = 0) -> dict:
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
    chosen_digit (CVAE): n_per_digit codes z ~ N(0, I) per digit, decoded with that digit;
    chosen_digit, chosen_speaker, both_right, pairs (cvae_speaker): n_per_pair codes for each
        digit x speaker pair (``judge_pairs``).
    phase_study (conditional models, when phase_per_pair > 0): ``phase_study``.
    With a ``speaker_judge``, the resynthesised recordings and every model's reconstructions
    also get a 'speaker' score: does the voice survive the auto-encoder?
    """
    rng = np.random.default_rng(seed)
    paths = {n: os.path.join(run, f"{n}.npz") for n in (models or MODELS)
             if os.path.exists(os.path.join(run, f"{n}.npz"))}
    if not paths:
        raise UsageError(f"checkpoint not found: no model checkpoints (<model>.npz) in {run}")
    res = {"classifier": judge.describe(), "threshold": 0.8, "n_per_digit": n_per_digit,
           "spread": spread, "models": {}}
    if speaker_judge is not None:
        res["speaker_classifier"] = speaker_judge.describe()
    samples_dir = os.path.join(run, "samples")
    first = Loaded(next(iter(paths.values())))
    data = load_data(data_root, first.cfg, limit=limit, progress=progress, log=log,
                     cache_dir=cache_dir, protocol=first.protocol)
    _, test_idx = fsdd.official_split(data.recs)
    test_idx = test_idx[np.linspace(0, len(test_idx) - 1,
                                    min(n_recon, len(test_idx))).astype(int)]
    y_te, hop_te = data.digits[test_idx], data.hops[test_idx]
    spk_te = data.speakers[test_idx]
    Xte = first.scaler.transform(data.S_db[test_idx])

    def voice_of(pairs, sr):  # the speaker judge's score of signals from the test recordings
        return _score(speaker_judge.proba([y for y, _ in pairs], sr),
                      speaker_judge.labels(spk_te), per="speaker")

    ys, sc = _resynth(first, Xte, hop_te, seed, progress, "resynthesised test set")
    resyn = res["resynthesised_test_recordings"] = _judged(judge, ys, sc, first.cfg.sr, y_te)
    log(f"[judge] classifier {judge.path} (its test accuracy on the recordings: "
        f"{judge.test_accuracy})")
    voice = ""
    if speaker_judge is not None:
        resyn["speaker"] = voice_of(ys, first.cfg.sr)
        voice = f", speaker {resyn['speaker']['accuracy']:.4f}"
    log(f"[judge] test recordings resynthesised from their own spectrograms (no model): accuracy "
        f"{resyn['accuracy']:.4f}{voice} (n = {len(test_idx)}, spectral convergence {sc:.3f})")
    digits_rep = np.repeat(np.arange(N_DIGITS), n_per_digit)
    titles = [f"digit {d}" for d in range(N_DIGITS)]
    for name, path in paths.items():
        m = Loaded(path)
        sr, r = m.cfg.sr, {}
        rec = m.model.reconstruct(Xte, m.condition(y_te, spk_te))
        ys, sc = _resynth(m, rec, hop_te, seed, progress, f"{name} reconstructions")
        r["reconstructions"] = _judged(judge, ys, sc, sr, y_te)
        if speaker_judge is not None:
            r["reconstructions"]["speaker"] = voice_of(ys, sr)
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
        if m.model.n_classes and phase_per_pair:
            train_idx = fsdd.official_split(data.recs)[0]  # phases from non-test recordings
            r["phase_study"] = phase_study(m, judge, speaker_judge,
                                           PhaseBank(m, data, train_idx), phase_per_pair,
                                           np.random.default_rng(seed + 1), seed, progress, log)
        if m.speakers:
            r.update(judge_pairs(m, judge, speaker_judge, n_per_pair, rng, seed, progress,
                                 samples_dir, log, data))
        elif m.model.n_classes:
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
    speaker_judge = optional_judge(args.speaker_classifier, "speaker", log)
    res = judge_run(run, judge, n_per_digit=args.n_per_digit, n_prior=args.n_prior,
                    n_recon=args.n_recon, spread=args.spread, seed=args.seed,
                    progress=args.progress, data_root=getattr(args, "data", None),
                    limit=getattr(args, "limit", None),
                    models=args.models if args.command == "judge" else None, log=log,
                    speaker_judge=speaker_judge, n_per_pair=args.n_per_pair,
                    phase_per_pair=getattr(args, "phase_study", 0))
    res["seconds"] = round(time.perf_counter() - t0, 1)
    path = write_summary(run, res, name="judge.json")
    summary = build_summary(run)
    summary["judge"] = res
    summary["files"] = sorted(set(summary.get("files", [])) | {path} |
                              set(glob.glob(os.path.join(run, "samples", "*"))))
    write_summary(run, summary)
    log(f"[judge] wrote {path} and updated summary.json ({res['seconds']:.0f} s)")
    return 0
