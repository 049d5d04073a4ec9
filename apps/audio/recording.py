"""A user's recording of one spoken word, made ready for a classifier trained on clean clips.

Real recordings differ from a dataset's: another sample rate, two channels, 24-bit or float
samples, a second of room noise before and after the word, a level that clips. ``load_word``
accepts all of that and refuses, with one line naming the file and the reason, what cannot be
a spoken word:

    y, notes = load_word("my_seven.wav", sr=8000)     # (L,) float32 at 8 kHz, the word only
    for n in notes: print("note:", n)                  # e.g. '2 channels averaged to mono'

Steps (all NumPy; the resampler is wav.resample, polyphase):
    1. read (wav.read_wav): any rate in 1-384 kHz, PCM 16/24/32-bit or float, at most
       ``max_seconds``; several channels are averaged to mono, with a note;
    2. refuse silence: peak below ``silence_db`` dBFS (wav.check_not_silent);
    3. refuse clipping-only input: among the samples above 10 % of the peak, the share that sits
       at the peak level (|y| >= 0.999 peak, a flattened top) is ``clipped_share``: under 1 %
       for all 3,000 FSDD clips, 0.2-0.25 for a word driven 3 x past full scale, above 0.6 at
       30 x, 1 for a square wave. Above ``max_clipped`` (0.5) the file is refused; above 1 % a
       note says that the recording clips;
    4. find the word with an energy detector (``find_word``) and keep it with a margin;
    5. resample to ``sr``.

The energy detector, on frames of 20 ms every 10 ms:
    e[t]   = 10 log10(mean(y[frame t]^2) + 1e-12)              frame energy, dB
    floor  = 10th percentile of e                               the background's level
    thr    = max(floor + min(6, (max(e) - floor) / 2), max(e) - 35)   active: e[t] > thr     (1)
Active frames closer than ``gap_s`` are joined into regions (a digit such as 'six' or 'eight'
holds a silent closure); the region with the largest energy sum(10^(e/10)) is the word, widened
while the neighbouring frames stay above floor + min(3, (max(e) - floor) / 4) dB (2) and by a
margin, so that the classifier's own trimming (features.prepare_signal, as in training) makes
the final cut. When
max(e) - floor < ``min_contrast_db`` nothing stands out of the background: the file is refused
(noise or hum only). A clip whose quietest tenth is still speech (a tightly cut dataset clip)
has a floor close to its peak only if it is a steady sound, which a word is not.
"""
from __future__ import annotations

import os

import numpy as np

from .wav import AudioError, check_not_silent, read_wav, resample

FRAME_S, HOP_S = 0.020, 0.010


def clipped_share(y, rel: float = 0.999, active: float = 0.1) -> float:
    """Share of the samples above ``active`` x peak that sit at >= ``rel`` x peak (0 for an
    all-zero signal): the flat tops of a clipped recording."""
    a = np.abs(np.asarray(y, dtype=np.float64))
    peak = float(a.max()) if a.size else 0.0
    if peak == 0.0:
        return 0.0
    loud = a >= active * peak
    return float((a[loud] >= rel * peak).mean())


def frame_energy_db(y, sr: int, frame_s: float = FRAME_S, hop_s: float = HOP_S):
    """e[t] of (1): energy in dB of frames of ``frame_s`` seconds every ``hop_s`` seconds,
    (frames,); the frame t covers samples t * hop .. t * hop + frame - 1 (the last one padded)."""
    y = np.asarray(y, dtype=np.float64)
    frame = max(1, int(round(frame_s * sr)))
    hop = max(1, int(round(hop_s * sr)))
    n = max(1, 1 + int(np.ceil(max(0, y.size - frame) / hop)))
    ypad = np.pad(y, (0, max(0, (n - 1) * hop + frame - y.size)))
    frames = np.lib.stride_tricks.sliding_window_view(ypad, frame)[::hop][:n]
    return 10.0 * np.log10(np.mean(frames * frames, axis=1) + 1e-12), hop, frame


def find_word(y, sr: int, min_contrast_db: float = 3.5, gap_s: float = 0.25,
              margin_s: float = 0.1, name: str = "signal"):
    """The loudest sound event of y by the energy detector (1): ((start, end) samples, info).

    info: {'best' (index into regions), 'floor_db', 'peak_db', 'threshold_db',
           'regions' [(start, end, share of the energy)]}.
    Raises AudioError when nothing rises ``min_contrast_db`` above the background.
    """
    e, hop, frame = frame_energy_db(y, sr)
    floor, peak = float(np.percentile(e, 10)), float(e.max())
    if peak - floor < min_contrast_db:
        raise AudioError(
            f"{name}: no word stands out of the background (the loudest 20 ms are only "
            f"{peak - floor:.1f} dB above the quietest tenth, less than {min_contrast_db:g} dB): "
            "a steady noise or hum, not a spoken word; record again closer to the microphone")
    thr = max(floor + 0.5 * min(12.0, peak - floor), peak - 35.0)  # (1)
    active = np.flatnonzero(e > thr)
    gap = max(1, int(round(gap_s / HOP_S)))
    regions, start, last = [], active[0], active[0]
    for t in active[1:]:
        if t - last > gap:
            regions.append((start, last))
            start = t
        last = t
    regions.append((start, last))
    power = 10.0 ** (e / 10.0)
    energy = np.array([power[a:b + 1].sum() for a, b in regions])
    best = int(np.argmax(energy))
    a, b = regions[best]
    low = floor + min(3.0, (peak - floor) / 4)  # hysteresis: widen down to near the floor (2)
    while a > 0 and e[a - 1] > low:
        a -= 1
    while b < len(e) - 1 and e[b + 1] > low:
        b += 1
    margin = int(round(margin_s * sr))
    s0 = int(max(0, a * hop - margin))
    s1 = int(min(len(y), b * hop + frame + margin))
    info = {"best": best, "floor_db": round(floor, 1), "peak_db": round(peak, 1),
            "threshold_db": round(thr, 1),
            "regions": [(int(r0 * hop), int(min(len(y), r1 * hop + frame)),
                         round(float(en / energy.sum()), 3))
                        for (r0, r1), en in zip(regions, energy)]}
    return (s0, s1), info


def load_word(path, sr: int, max_seconds: float = 10.0, downmix: bool = True,
              silence_db: float = -50.0, max_clipped: float = 0.5, trim: bool = True):
    """Read a recording of one spoken word and return (y, notes): y (L,) float32 at ``sr``, the
    word found by ``find_word`` (the whole file with ``trim=False``); notes, a list of
    one-line remarks (downmix, clipping, several sounds, resampling). Steps 1-5 of the module
    docstring; every refusal is an AudioError naming the file."""
    import soundfile as sf  # noqa: PLC0415 - libsndfile only to describe the file in notes

    name = os.fspath(path)
    y, file_sr = read_wav(path, sr=None, downmix=downmix, max_seconds=max_seconds,
                          dtype=np.float64)
    notes = []
    info = sf.info(name)
    if info.channels > 1:
        notes.append(f"{name}: {info.channels} channels averaged to mono")
    check_not_silent(y, silence_db, name=name)
    share = clipped_share(y)
    if share > max_clipped:
        raise AudioError(
            f"{name}: clipping only: {100 * share:.0f}% of the loud samples sit at the peak "
            "level (an overdriven recording, a square wave or a constant): record again with "
            "the input gain lower")
    if share > 0.01:
        notes.append(f"{name}: the recording clips ({100 * share:.1f}% of the loud samples at "
                     "the peak level); lower the input gain if the result looks wrong")
    if trim:
        (s0, s1), det = find_word(y, file_sr, name=name)
        loud_others = [r for i, r in enumerate(det["regions"]) if i != det["best"] and r[2] >= 0.2]
        if loud_others:
            notes.append(f"{name}: {len(loud_others) + 1} separate sounds; classified the "
                         f"loudest, {s0 / file_sr:.2f}-{s1 / file_sr:.2f} s")
        y = y[s0:s1]
    if file_sr != sr:
        notes.append(f"{name}: resampled from {file_sr} Hz to {sr} Hz")
        y = resample(y, file_sr, sr)
    return np.asarray(y, dtype=np.float32), notes


__all__ = ["clipped_share", "frame_energy_db", "find_word", "load_word"]
