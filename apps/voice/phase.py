"""Griffin-Lim started from the phase of a real recording (apps/voice_vae.py `generate --phase
recording`, and the judge's phase study).

A generated [0, 1] image has no phase; Griffin-Lim starts from a random one by default. Here it
starts instead from the STFT phase of a training recording of the same word: among the training
recordings of the same digit (and the same voice, for cvae_speaker), the one whose image is
closest to the generated image (mean squared difference on [0, 1]), apps/audio/griffinlim.py's
(5). The word is then played at that recording's own hop, so the phase advances from frame to
frame at the rate the image is played at (the image has as many frames as the recording's
analysis: features.extract fits every word to n_frames).

    bank = PhaseBank(loaded, data, train_idx)
    k = bank.nearest(image, digit, speaker)      # an index into data.recs
    hop, X0 = bank.phase(k)                      # X0: (1 + n_fft // 2, n_frames) complex
    y, info = to_audio(loaded, image, hop, init=X0)
"""
from __future__ import annotations

import numpy as np

from apps.audio.features import prepare_signal
from apps.audio.stft import stft
from apps.audio.wav import read_wav
from apps.common.errors import UsageError
from apps.voice.checkpoint import Loaded
from apps.voice.data import VoiceData

PHASES = ("random", "recording")  # what `generate --phase` offers


class PhaseBank:
    """The training recordings a generated word may borrow its initial phase from.

    ``loaded``: the model (its scaler maps the recordings' dB images to [0, 1]); ``data``: every
    recording (VoiceData); ``indices``: the ones to choose from (the training split).
    """

    def __init__(self, loaded: Loaded, data: VoiceData, indices):
        self.loaded, self.data = loaded, data
        self.indices = np.asarray(indices)
        self.X = loaded.scaler.transform(data.S_db[self.indices]).reshape(len(self.indices), -1)
        self.digits = data.digits[self.indices]
        self.speakers = data.speakers[self.indices]

    def nearest(self, image, digit: int, speaker=None) -> int:
        """The index (into data.recs) of the closest training image of that digit (and
        speaker)."""
        mask = self.digits == digit
        if speaker is not None:
            mask &= self.speakers == speaker
        if not mask.any():
            raise UsageError(f"no training recording of digit {digit}"
                             f"{' by ' + str(speaker) if speaker is not None else ''} to take a "
                             "phase from")
        cand = np.flatnonzero(mask)
        d = np.mean((self.X[cand] - np.asarray(image, np.float32).reshape(1, -1)) ** 2, axis=1)
        return int(self.indices[cand[int(np.argmin(d))]])

    def phase(self, k: int):
        """(hop, X0) of recording k: its analysis hop and its STFT at that hop, cut or padded
        to the model's n_frames (X0 (1 + n_fft // 2, n_frames) complex128)."""
        cfg, protocol = self.loaded.cfg, self.loaded.protocol
        y, _ = read_wav(self.data.recs[k].path, sr=cfg.sr)
        if protocol == "classifier":  # the signal features.extract analysed: silence trimmed
            y = prepare_signal(y, cfg)
        hop = int(self.data.hops[k])
        X0 = stft(np.asarray(y, np.float64), n_fft=cfg.n_fft, hop_length=hop)
        T = cfg.n_frames
        if X0.shape[1] < T:  # a very short signal: later frames start from zero phase
            X0 = np.pad(X0, ((0, 0), (0, T - X0.shape[1])), constant_values=1.0)
        return hop, X0[:, :T]
