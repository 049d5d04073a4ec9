"""Griffin-Lim phase recovery, the fast variant with momentum (Perraudin, Balazs & Sondergaard
2013).

A magnitude spectrogram S (1 + n_fft // 2, frames) has lost its phase. Griffin-Lim looks for a
signal whose STFT magnitude is as close as possible to S by alternating two projections:

    P_C1(X) = STFT(ISTFT(X))          onto consistent spectrograms (those of some signal)
    P_C2(X) = S * X / |X|             onto spectrograms with the wanted magnitude

Plain Griffin-Lim iterates X_{n+1} = P_C2(P_C1(X_n)). The fast variant adds a momentum step
(librosa's ``griffinlim``, whose defaults are n_iter = 32, momentum = 0.99):

    rebuilt_n = STFT(ISTFT(S * angles_n))                                               (1)
    t_n       = rebuilt_n - (momentum / (1 + momentum)) * rebuilt_{n-1}                  (2)
    angles_{n+1} = t_n / (|t_n| + eps)                                                   (3)

and the output is y = ISTFT(S * angles_N). The initial phase is random (angles_0 =
exp(2 i pi U), U ~ U[0, 1)), zero (angles_0 = 1), or the phase of a given complex spectrogram
X0 of S's shape, e.g. the STFT of a real recording of the same word:

    angles_0 = X0 / (|X0| + eps)                                                        (5)

How good a result is: the spectral convergence of a signal y,

    SC(y) = || S - |STFT(y)| ||_F / || S ||_F                                           (4)

0 for a perfect match. |rebuilt_n| in (1) is the STFT magnitude of the n-th signal, so the
history of SC costs nothing extra; ``GriffinLimResult`` reports it with the final value.

    res = griffinlim(S, hop_length=64, n_fft=512, n_iter=32, seed=0)
    res.y, res.spectral_convergence, res.history

NumPy or CuPy arrays (the STFT is apps/audio/stft.py); S of shape (..., bins, frames) is fine.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nnscratch.backend import get_array_module

from .stft import istft, stft

INITS = ("random", "zero")


@dataclass
class GriffinLimResult:
    """The signal and how well its STFT magnitude matches the target."""

    y: object                              # (..., L) the signal
    spectral_convergence: float            # (4) of the returned signal (mean over a batch)
    history: list = field(default_factory=list)  # (4) after each iteration
    n_iter: int = 0
    momentum: float = 0.0
    init: str = "random"                   # 'random', 'zero' or 'given' (a phase passed in)

    def to_dict(self) -> dict:
        return {"spectral_convergence": self.spectral_convergence, "n_iter": self.n_iter,
                "momentum": self.momentum, "init": self.init,
                "history": [round(float(h), 6) for h in self.history]}


def spectral_convergence(S, y, n_fft: int, hop_length: int, win_length: int | None = None,
                         center: bool = True) -> float:
    """Equation (4): || S - |STFT(y)| ||_F / || S ||_F, y's STFT cut or padded to S's frames."""
    xp = get_array_module(S)
    mag = xp.abs(stft(y, n_fft=n_fft, hop_length=hop_length, win_length=win_length, center=center))
    return _sc(S, _match_frames(mag, S.shape[-1]))


def _match_frames(M, T):
    xp = get_array_module(M)
    if M.shape[-1] >= T:
        return M[..., :T]
    widths = [(0, 0)] * (M.ndim - 1) + [(0, T - M.shape[-1])]
    return xp.pad(M, widths)


def _sc(S, M) -> float:
    xp = get_array_module(S)
    num = xp.sqrt(((S - M) ** 2).sum(axis=(-2, -1)))
    den = xp.sqrt((S ** 2).sum(axis=(-2, -1)))
    return float((num / xp.maximum(den, 1e-30)).mean())


def griffinlim(S, n_iter: int = 32, hop_length: int | None = None, win_length: int | None = None,
               n_fft: int | None = None, center: bool = True, length: int | None = None,
               momentum: float = 0.99, init="random", seed=None, track: bool = True
               ) -> GriffinLimResult:
    """A signal whose STFT magnitude approximates S, by equations (1)-(3).

    Args:
        S: magnitude spectrogram (..., 1 + n_fft // 2, frames), non-negative.
        n_iter: iterations (each one ISTFT and one STFT).
        hop_length, win_length, n_fft: STFT geometry (defaults as stft.py: n_fft from S,
            win_length = n_fft, hop = win_length // 4). Must match the analysis that made S.
        length: cut or pad the output to this many samples (the STFT frames then match S's).
        momentum: 0 gives plain Griffin-Lim; values above 1 can diverge.
        init: 'random' (uniform random phase), 'zero', or a complex array of S's shape whose
            phase starts the iterations, (5).
        seed: for 'random': an int, None, or a numpy Generator / RandomState (passing librosa's
            ``random_state`` the same generator gives the same initial phases).
        track: record SC after each iteration (free; see the module docstring).
    Returns a GriffinLimResult (y, spectral_convergence of y, history).
    """
    xp = get_array_module(S)
    given = not isinstance(init, str)
    if not given and init not in INITS:
        raise ValueError(f"init must be one of {INITS} or a complex array, got {init!r}")
    if n_iter < 0:
        raise ValueError(f"n_iter must be >= 0, got {n_iter}")
    if momentum < 0:
        raise ValueError(f"momentum must be >= 0, got {momentum}")
    S = xp.asarray(S)
    if S.ndim < 2:
        raise ValueError(f"S must be a spectrogram (..., bins, frames), got shape {tuple(S.shape)}")
    if bool((S < 0).any()):
        raise ValueError("S must be a magnitude spectrogram (non-negative)")
    n_fft = 2 * (S.shape[-2] - 1) if n_fft is None else n_fft
    win_length = n_fft if win_length is None else win_length
    hop_length = win_length // 4 if hop_length is None else hop_length
    real = xp.float32 if S.dtype == xp.float32 else xp.float64
    S = S.astype(real, copy=False)
    eps = np.finfo(real).tiny
    if given:
        X0 = xp.asarray(init)
        if X0.shape != S.shape or not xp.iscomplexobj(X0):
            raise ValueError(f"a given initial phase must be a complex array of S's shape "
                             f"{tuple(S.shape)}, got {X0.dtype} {tuple(X0.shape)}")
        angles = X0 / (xp.abs(X0) + eps)                           # (5)
        init = "given"
    elif init == "random":
        if isinstance(seed, (np.random.Generator, np.random.RandomState)):
            rng = seed  # the same generator as librosa's random_state gives the same phases
        else:
            rng = np.random.default_rng(seed)
        angles = xp.asarray(np.exp(2j * np.pi * rng.random(S.shape)))
    else:
        angles = xp.ones(S.shape, dtype=xp.complex128)
    angles = angles.astype(xp.complex64 if real == xp.float32 else xp.complex128)
    T = S.shape[-1]
    # librosa: length=None keeps ISTFT's natural length; frames then match S exactly (center)
    geometry = {"hop_length": hop_length, "win_length": win_length, "n_fft": n_fft,
                "center": center}

    def frames_of(y):
        return _match_frames(stft(y, n_fft=n_fft, hop_length=hop_length, win_length=win_length,
                                  center=center), T)

    alpha = momentum / (1.0 + momentum)
    rebuilt = None
    history = []
    for _ in range(n_iter):
        y = istft(S * angles, length=length, **geometry)
        prev, rebuilt = rebuilt, frames_of(y)                      # (1)
        if track:
            history.append(_sc(S, xp.abs(rebuilt)))
        t = rebuilt if prev is None else rebuilt - alpha * prev    # (2)
        angles = t / (xp.abs(t) + eps)                             # (3)
    y = istft(S * angles, length=length, **geometry)
    sc = _sc(S, xp.abs(frames_of(y)))                              # (4)
    return GriffinLimResult(y=y, spectral_convergence=sc, history=history, n_iter=n_iter,
                            momentum=momentum, init=init)


__all__ = ["griffinlim", "spectral_convergence", "GriffinLimResult", "INITS"]
