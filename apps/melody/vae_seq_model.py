"""The sequence VAE of the melody app (``--arch seq``): MusicVAE's shape (Roberts et al. 2018) with
a flat decoder, over one stream of class ids (the notes, or the rhythm).

    ids (B, L) -> Embedding(C, E) -> BiLSTM(E, He) -> outputs u (B, L, 2 He)           (5)
    u flattened (B, L 2 He) -> VariationalBottleneck -> mu, log_var, z (B, Z)          (5)
    z -> Dense(Z, 2 Hd) -> tanh -> (h0, c0) of the decoder                            (6)
    z -> Dense(Z, L K) -> tanh -> one conditioning vector c_t (K) per position        (6)
    decoder input at step t: [Embedding'(ids_{t-1}) ; c_t], ids_{-1} = START          (7)
    LSTM(E + K, Hd) from (h0, c0) -> Dense(Hd, C) -> logits (B, L, C)                (7)

Equation numbers: docs/derivations/melody_vae.md.
Two departures from MusicVAE, both for the same reason (a flat model reconstructed badly here,
see docs/derivations/melody_vae.md): the bottleneck reads the BiLSTM's outputs at every
position rather than its two final states, and the decoder reads z through a per-position
vector c_t (a conductor without recurrence: MusicVAE's conductor gives one vector per bar)
rather than the same z at every step.

Training feeds the true previous class at each step (teacher forcing), except where word
dropout (Bowman et al. 2016; ``keep`` mask, drawn in training when ``word_dropout`` > 0) replaces
it by START, so that the decoder must read z; ``decode`` feeds the model's own choice (greedy or
sampled), which is how reconstructions and samples are judged.
The backward is written by hand in ``SeqVAE.backward``, top to bottom in reverse, with the
gradients of z summed over its two uses (the initial state and the conditioning vectors):
docs/derivations/melody_vae.md (8)-(13).
"""
from __future__ import annotations

import numpy as np

import nnscratch as nn

from .vae_model import VAEGrads, VAEOutput, pick


class SeqVAE(nn.Layer):
    """BiLSTM encoder, variational bottleneck, LSTM decoder with z at every step.

    Shapes: ids (batch, length) int class ids in [0, classes); mu, log_var, z (batch, latent);
    logits (batch, length, classes). ``forward(ids, eps=None)`` returns a ``VAEOutput``;
    ``backward(VAEGrads)`` adds into every parameter's gradient and returns None (ids are
    data). In eval mode z = mu.
    """

    def __init__(self, length: int, classes: int, embed: int = 32, enc_hidden: int = 64,
                 dec_hidden: int = 256, latent: int = 128, cond: int = 16, free_bits: float = 0.0,
                 word_dropout: float = 0.0):
        super().__init__()
        self.word_dropout = word_dropout
        self.length, self.classes, self.embed, self.cond = length, classes, embed, cond
        self.enc_hidden, self.dec_hidden, self.latent = enc_hidden, dec_hidden, latent
        self.start = classes                                   # the decoder's "no previous class"
        self.enc_embed = nn.Embedding(classes, embed)
        self.encoder = nn.LSTM(embed, enc_hidden, bidirectional=True)
        self.bottleneck = nn.VariationalBottleneck(length * 2 * enc_hidden, latent,
                                                   free_bits=free_bits)
        self.init_state = nn.Dense(latent, 2 * dec_hidden)
        self.init_act = nn.Tanh()
        self.conductor = nn.Dense(latent, length * cond)
        self.cond_act = nn.Tanh()
        self.dec_embed = nn.Embedding(classes + 1, embed)
        self.decoder = nn.LSTM(embed + cond, dec_hidden)
        self.out = nn.Dense(dec_hidden, classes)

    # -- pieces shared by forward and decode --------------------------------------------------
    def _initial_state(self, z):
        """(h0, c0), each (1, B, Hd), from z: (6)."""
        s = self.init_act(self.init_state(z))
        Hd = self.dec_hidden
        return s[None, :, :Hd], s[None, :, Hd:]

    def _conduct(self, z):
        """One conditioning vector per position, (B, L, cond), from z: (6)."""
        return self.cond_act(self.conductor(z)).reshape(z.shape[0], self.length, self.cond)

    def forward(self, ids, eps=None, keep=None) -> VAEOutput:
        self.check_input(ids, ndim=2, last_dim=self.length, what="class ids (batch, length)")
        xp = nn.get_array_module(self.out.weight.data)
        ids = xp.asarray(ids)
        B, L = ids.shape
        if keep is None and self.training and self.word_dropout > 0:
            keep = nn.get_rng(nn.backend.device_of(ids)).random((B, L)) >= self.word_dropout
        y_enc, _ = self.encoder(self.enc_embed(ids))                          # (5)
        b = self.bottleneck(y_enc.reshape(B, -1), eps)                        # (5)
        h0, c0 = self._initial_state(b.z)                                     # (6)
        cond = self._conduct(b.z)                                             # (6)
        prev = xp.concatenate([xp.full((B, 1), self.start, dtype=ids.dtype), ids[:, :-1]], 1)
        if keep is not None:                  # word dropout: a dropped input reads as START
            prev = xp.where(xp.asarray(keep), prev, self.start)
        x = xp.concatenate([self.dec_embed(prev), cond], axis=2)              # (7)
        y, _ = self.decoder(x, (h0, c0))
        return VAEOutput(self.out(y), b.mu, b.log_var, np.float64(b.kl))     # (7)

    def backward(self, grads):
        g = VAEGrads(*grads)
        xp = nn.get_array_module(self.out.weight.data)
        E = self.embed
        B = g.dlogits.shape[0]
        dy = self.out.backward(g.dlogits)                                     # (8)
        dx, (dh0, dc0) = self.decoder.backward(dy)                            # (9) BPTT
        self.dec_embed.backward(dx[:, :, :E])                                 # (10)
        dcond = xp.ascontiguousarray(dx[:, :, E:]).reshape(B, -1)
        dz = self.conductor.backward(self.cond_act.backward(dcond))          # (11)
        ds = xp.concatenate([dh0[0], dc0[0]], axis=1)
        dz = dz + self.init_state.backward(self.init_act.backward(ds))       # (12) z's two uses
        kl_weight = 0.0 if g.dkl is None else float(g.dkl)
        dh = self.bottleneck.backward(dz, kl_weight=kl_weight, dmu=g.dmu,
                                      dlog_var=g.dlog_var)                    # variational.md
        de, _ = self.encoder.backward(dh.reshape(B, self.length, -1))         # (13)
        self.enc_embed.backward(de)
        return None

    # -- evaluation -------------------------------------------------------------------------
    def encode(self, ids):
        """(mu, log_var) (batch, latent) as CPU arrays; nothing saved."""
        with nn.no_grad():
            xp = nn.get_array_module(self.out.weight.data)
            y_enc, _ = self.encoder(self.enc_embed(xp.asarray(ids)))
            mu, log_var = self.bottleneck.encode(y_enc.reshape(len(ids), -1))
            return nn.to_cpu(mu), nn.to_cpu(log_var)

    def decode(self, z, rng=None, temperature: float = 1.0):
        """Class ids (batch, length) for codes z, one step at a time, each step fed the class
        chosen at the previous one: the most likely (``rng`` None) or drawn from the softmax at
        ``temperature``. A decoder trained with word dropout 1.0 never saw a previous class, only
        START: it is fed START at every step here too (a non-autoregressive decoder, each
        step a function of z and the steps' hidden state alone). CPU array."""
        with nn.no_grad():
            z = nn.to_device(np.asarray(z, dtype=self.out.weight.data.dtype))
            xp = nn.get_array_module(z)
            B = z.shape[0]
            state = self._initial_state(z)
            cond = self._conduct(z)
            prev = np.full(B, self.start, dtype=np.int64)
            out = np.empty((B, self.length), dtype=np.int64)
            for t in range(self.length):
                x = xp.concatenate([self.dec_embed(xp.asarray(prev)), cond[:, t]], axis=1)
                y, state = self.decoder.step(x, state)
                logits = nn.to_cpu(self.out(y)).astype(np.float64)
                out[:, t] = pick(logits, rng, temperature)
                if self.word_dropout < 1.0:
                    prev = out[:, t]
            return out

    def extra_repr(self) -> str:
        return (f"length={self.length}, classes={self.classes}, embed={self.embed}, "
                f"enc_hidden={self.enc_hidden}, dec_hidden={self.dec_hidden}, "
                f"latent={self.latent}, cond={self.cond}")
