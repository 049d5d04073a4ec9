"""The drum-accompaniment model: CNN-LSTM encoders, a variational bottleneck, a hierarchical
(conductor) decoder and three H/V/O heads, with its whole backward written by hand.

Graph, equations and the backward's derivation: docs/derivations/drum_vae.md (numbers cited as
``# (n)``). Shapes: B windows, T steps (a multiple of S), S = ``sub_steps`` steps per
sub-sequence (32 = 2 bars), U = T / S sub-sequences, E encoders, F_i input features of encoder
i, Z latent units, C conductor units, D decoder units, L = 2 decoder layers, K = 9 drum classes::

    x_i (B, T, F_i) --Conv1D-ReLU-Conv1D-ReLU-BiLSTM--> e_i (B, 2 He)       (1)  one per input
    e = [e_1 .. e_E] --Dense-tanh--> m (B, M)                               (2)
    mu, log_var = Dense(m), Dense(m)   (B, Z)                               (3)  the bottleneck
    z = mu + exp(log_var / 2) * eps                                         (4)
    c_1..c_U = LSTM_conductor(z, z, ..., z)   (B, U, C)                      (5)
      (two levels: p_1..p_J = LSTM_conductor(z, ..., z); c = LSTM_sub(p_j, ..., p_j)   (5b))
    s_u = tanh(Dense(c_u)) = initial (h, c) of both decoder layers           (6)
    d_t = [hvo_{t-1}, c_u(t), pos_t, a_t]   (hvo_{-1} = 0)                   (7)
    y = LSTM_decoder(d) per sub-sequence, from s_u   (B, T, D)              (8)
    h_logits = Dense(y);  v = sigmoid(Dense(y));  o = tanh(Dense(y)) / 2    (9)

The accompaniment model has E = 3 encoders (piano, guitar and bass rolls, F = 88 each); the
humanisation model (GrooVAE's task, pretrained on Groove MIDI) has one encoder over the hits H
(F = 9). Both share every layer from the bottleneck down, by name, so the pretrained decoder
side loads into the accompaniment model (``transfer_decoder``).

(3), (4) and their backward (19), (20) are ``nnscratch.VariationalBottleneck``
(docs/derivations/variational.md). ``DrumLoss`` (loss.py) holds (10)-(13) and their gradients
(14); ``DrumVAE.backward`` runs (15)-(22). ``generate`` decodes free-running (each step's own
output is the next step's input), with a hit threshold or a temperature; ``log_likelihood``
scores given drums under teacher forcing. ``load_model`` reads a run's checkpoint back.

Options for free running (drum_vae.md, "Training for free running"): ``Sampling`` (scheduled
sampling, in decoding.py: the previous step fed in (7) is, with probability 1 - ratio, the
model's own output, decided by a step-by-step pass without gradient; MusicVAE's
inverse-sigmoid schedule (7b) in train.py); ``conductor_levels = 2`` (1-bar sub-sequences
under a phrase conductor (5b), the seed's 5.4); ``enc_layers`` (stacked BiLSTMs in each
encoder, MusicVAE's; encoder.py); ``position`` (pos_t, a one-hot of the step within the bar),
``local`` (a_t, each input stream's onsets at step t, min(n, 4) / 4) and ``bar_rhythm`` (r_t,
those onsets at all 16 steps of the bar that holds t): data fed to the decoder beside c_u;
``feedback = False``: the decoder never reads its previous drums (zeros in (7)), so
generation runs exactly as training does.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

import nnscratch as nn
from apps.common.errors import UsageError
from nnscratch.functions.activation import sigmoid
from nnscratch.functions.base import Context
from nnscratch.layers.dropout import Dropout
from nnscratch.layers.lstm import LSTM

from . import groove
from .data import APP
from .decoding import HVO, K, Sampling, free_run, scheduled_inputs
from .encoder import CNNLSTMEncoder


@dataclass
class DrumConfig:
    """Sizes of a DrumVAE. ``inputs`` lists each encoder's input features."""

    inputs: tuple = (88, 88, 88)
    conv_channels: int = 32
    kernel: int = 3
    enc_stride: int = 2          # stride of the second convolution (halves the BiLSTM's steps)
    enc_hidden: int = 64
    merge: int = 128
    latent: int = 64
    conductor: int = 64
    dec_hidden: int = 128
    dec_layers: int = 2
    sub_steps: int = 32
    dropout: float = 0.0         # on the decoder's outputs, before the heads (training only)
    input_dropout: float = 0.0   # teacher-forcing dropout: whole previous steps zeroed in (7)
    forget_bias: float = 1.0
    enc_layers: int = 1          # stacked BiLSTM layers in each encoder
    conductor_levels: int = 1    # 2: a phrase conductor over a sub-conductor (5b)
    phrase_subs: int = 2         # sub-sequences per phrase when conductor_levels = 2
    position: bool = False       # decoder input: one-hot of the step within the bar
    local: bool = False          # decoder input: each input stream's onsets at the step
    bar_rhythm: bool = False     # decoder input: each stream's onsets at every step of the bar
    feedback: bool = True        # False: (7) reads zeros for hvo_{t-1}, in training and generation

    def to_json(self) -> dict:
        d = asdict(self)
        d["inputs"] = list(self.inputs)
        return d

    @classmethod
    def from_json(cls, d: dict) -> DrumConfig:
        d = dict(d)
        d["inputs"] = tuple(d["inputs"])
        return cls(**d)


#: model sizes: ``cpu`` trains in tens of minutes on 2 cores; ``seed`` is the report's scale
#: (a 200-unit encoder RNN; GrooVAE's 256-unit decoder and latent code)
PRESETS = {
    "tiny": dict(conv_channels=4, enc_hidden=5, merge=6, latent=3, conductor=4, dec_hidden=5,
                 sub_steps=4),
    "small": dict(conv_channels=8, enc_hidden=16, merge=32, latent=16, conductor=16,
                  dec_hidden=32),
    "cpu": dict(conv_channels=32, enc_hidden=64, merge=128, latent=64, conductor=64,
                dec_hidden=128),
    "seed": dict(conv_channels=64, enc_stride=1, enc_hidden=200, merge=256, latent=256,
                 conductor=256, dec_hidden=256),
}


# ----------------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------------
def _tile_steps(a, n):
    """(B, U, C) -> (B, U, n, C): each sub-sequence's vector repeated over its n steps."""
    xp = nn.get_array_module(a)
    return xp.broadcast_to(a[:, :, None, :], (a.shape[0], a.shape[1], n, a.shape[2]))


class DrumVAE(nn.Layer):
    """Encoders, VIB, conductor, 2-layer decoder, heads (module docstring, (1)-(9)).

    ``forward(x, hvo, eps=None, prev=None, sampling=None) -> (h_logits, v, o, mu, log_var)``:
        x     (B, E, T, F) inputs of the E encoders (or a list of E arrays (B, T, F_i))
        hvo   (B, T, 27) the target drums [H | V | O], read shifted by one step (7)
        eps   (B, Z) the sampling noise (drawn when None; z = mu in eval mode)
        prev  (B, T, 27) the previous-step drums fed in (7), given (default: hvo shifted)
        sampling  a ``Sampling`` (training only): scheduled sampling builds ``prev``
        h_logits, v, o (B, T, 9); mu, log_var (B, Z)
    ``backward((dh_logits, dv, do, dmu, dlog_var))`` runs (15)-(22), adds into every
    parameter's gradient and returns None (all inputs are data: the fed drums too, whether
    true or the model's own, which scheduled sampling treats as constants). dmu and dlog_var
    are the KL term's gradients (DrumLoss's per-window free bits), joined to the sampling
    path's in (19) by the bottleneck's backward. ``last_prev`` keeps the drums fed in the
    last forward (for tests and the record).

    Layer-wise training: frozen layers (``freeze()``) take no gradient, and when every layer
    below some point is frozen, backward stops there instead of computing gradients nobody
    uses (``_trainable``).
    """

    def __init__(self, cfg: DrumConfig | None = None):
        super().__init__()
        cfg = cfg or DrumConfig()
        if cfg.conductor_levels not in (1, 2):
            raise ValueError(f"conductor_levels must be 1 or 2, got {cfg.conductor_levels}")
        self.cfg = cfg
        self.encoders = nn.LayerList([
            CNNLSTMEncoder(f, cfg.conv_channels, cfg.enc_hidden, cfg.kernel, cfg.enc_stride,
                           cfg.forget_bias, cfg.enc_layers) for f in cfg.inputs])
        self.merge = nn.Dense(len(cfg.inputs) * 2 * cfg.enc_hidden, cfg.merge)
        self.merge_act = nn.Tanh()
        # (3), (4): its own KL goes unused (kl_weight 0 in backward): DrumLoss's KL (12) has
        # free bits per window, not per latent dimension
        self.bottleneck = nn.VariationalBottleneck(cfg.merge, cfg.latent)
        self.conductor = LSTM(cfg.latent, cfg.conductor, forget_bias=cfg.forget_bias)
        self.sub_conductor = (LSTM(cfg.conductor, cfg.conductor, forget_bias=cfg.forget_bias)
                              if cfg.conductor_levels == 2 else None)
        self.init_state = nn.Dense(cfg.conductor, 2 * cfg.dec_layers * cfg.dec_hidden)
        self.init_act = nn.Tanh()
        self.n_extra = (groove.STEPS_PER_BAR if cfg.position else 0) + \
            (len(cfg.inputs) if cfg.local else 0) + \
            (groove.STEPS_PER_BAR * len(cfg.inputs) if cfg.bar_rhythm else 0)
        self.decoder = LSTM(HVO + cfg.conductor + self.n_extra, cfg.dec_hidden,
                            num_layers=cfg.dec_layers, forget_bias=cfg.forget_bias)
        self.dropout = Dropout(cfg.dropout)
        self.head_h = nn.Dense(cfg.dec_hidden, K)
        self.head_v = nn.Dense(cfg.dec_hidden, K)
        self.v_act = nn.Sigmoid()
        self.head_o = nn.Dense(cfg.dec_hidden, K)
        self.o_act = nn.Tanh()
        self.last_prev = None

    # -- layer groups, from the output towards the input (the layer-wise schedule's order) -------
    def groups(self) -> list:
        """[(name, [layers])] from the output to the input."""
        enc = list(self.encoders)
        cond = [self.conductor] + ([self.sub_conductor] if self.sub_conductor else [])
        return [("heads", [self.head_h, self.head_v, self.head_o]),
                ("decoder", [self.decoder]),
                ("init_state", [self.init_state]),
                ("conductor", cond),
                ("bottleneck", [self.bottleneck]),
                ("merge", [self.merge]),
                ("encoder_lstm", [e.lstm for e in enc]),
                ("encoder_conv", [layer for e in enc for layer in (e.conv1, e.conv2)])]

    @staticmethod
    def _trainable(*layers) -> bool:
        return any(p.requires_grad for layer in layers for p in layer.parameters())

    # -- forward ---------------------------------------------------------------------------------
    def _inputs(self, x):
        if isinstance(x, (list, tuple)):
            xs = list(x)
        else:
            if x.ndim != 4 or x.shape[1] != len(self.encoders):
                raise ValueError(f"{self.label}: expected inputs (batch, {len(self.encoders)}, "
                                 f"time, features), got {tuple(x.shape)}")
            xs = [x[:, i] for i in range(x.shape[1])]
        for i, (a, f) in enumerate(zip(xs, self.cfg.inputs)):
            if a.ndim != 3 or a.shape[2] != f:
                raise ValueError(f"{self.label}: encoder {i} expects (batch, time, {f}), got "
                                 f"{tuple(a.shape)}")
        return xs

    def _merged(self, x):
        """The merged code m (B, M) of the inputs: equations (1), (2)."""
        xp_ = nn.get_array_module(self.merge.weight.data)
        es = [enc(xp_.asarray(a, dtype=self.merge.weight.dtype))
              for enc, a in zip(self.encoders, self._inputs(x))]                   # (1)
        return self.merge_act(self.merge(xp_.concatenate(es, axis=-1)))            # (2)

    def encode(self, x):
        """(mu, log_var), each (B, Z): equations (1)-(3), nothing saved for a backward."""
        with nn.no_grad():
            return self.bottleneck.encode(self._merged(x))                          # (3)

    def conduct(self, z, U: int):
        """Conductor vectors c (B, U, C) and decoder initial states s (B, U, 2 L D): (5), (6).

        Two levels (5b): the phrase conductor runs J = ceil(U / P) steps on z, the
        sub-conductor runs P steps on each phrase vector p_j (as one batch of B J sequences);
        c is the first U of its J P outputs."""
        xp_ = nn.get_array_module(z)
        if self.sub_conductor is None:
            c, _ = self.conductor(xp_.repeat(z[:, None, :], U, axis=1))               # (5)
        else:
            B, P = z.shape[0], self.cfg.phrase_subs
            J = -(-U // P)
            p, _ = self.conductor(xp_.repeat(z[:, None, :], J, axis=1))               # (5b)
            q = xp_.repeat(p.reshape(B * J, 1, -1), P, axis=1)                         # (B J, P, C)
            c, _ = self.sub_conductor(q)                                               # (5b)
            c = c.reshape(B, J * P, -1)[:, :U]
        return c, self.init_act(self.init_state(c))                                 # (6)

    def _split_state(self, s):
        """s (B, U, 2 L D) -> (h0, c0), each (L, B U, D), in the decoder's layout."""
        B, U, _ = s.shape
        L, D = self.cfg.dec_layers, self.cfg.dec_hidden
        s = s.reshape(B * U, 2, L, D)
        xp_ = nn.get_array_module(s)
        return (xp_.ascontiguousarray(s[:, 0].transpose(1, 0, 2)),
                xp_.ascontiguousarray(s[:, 1].transpose(1, 0, 2)))

    @property
    def block_steps(self) -> int:
        """Training windows are a whole number of these: a sub-sequence, or a phrase (5b)."""
        return self.cfg.sub_steps * (self.cfg.phrase_subs if self.sub_conductor else 1)

    def extras(self, x, T: int, B: int, start_step: int = 0):
        """The decoder's data inputs beside c_u, (B, T, X) or None when X = 0: pos_t, one-hot of
        (start_step + t) mod 16; a_t, each input stream's onsets min(n, 4) / 4; r_t, those
        onsets at each of the 16 steps of the bar that holds step t, stream by stream (7)."""
        if not self.n_extra:
            return None
        xp_ = nn.get_array_module(self.merge.weight.data)
        dtype = self.merge.weight.dtype
        bar = groove.STEPS_PER_BAR
        pos_of = (start_step + np.arange(T)) % bar
        parts = []
        if self.cfg.position:
            pos = np.eye(bar, dtype=np.float32)[pos_of]
            parts.append(xp_.broadcast_to(xp_.asarray(pos, dtype=dtype)[None], (B, T, bar)))
        onsets = []
        if self.cfg.local or self.cfg.bar_rhythm:
            for a in self._inputs(x):
                a = xp_.asarray(a, dtype=dtype)
                n = xp_.zeros((B, T), dtype)
                m = min(T, a.shape[1])
                n[:, :m] = xp_.minimum((a[:, :m] > 0).sum(axis=-1), 4) / 4.0   # notes, not loudness
                onsets.append(n)
        if self.cfg.local:
            parts.extend(n[..., None] for n in onsets)
        if self.cfg.bar_rhythm:
            # step t reads steps t - pos_t .. t - pos_t + 15 (its bar; zeros outside the window)
            idx = np.arange(T)[:, None] - pos_of[:, None] + np.arange(bar)[None]     # (T, 16)
            inside = xp_.asarray((idx >= 0) & (idx < T), dtype=dtype)
            idx = xp_.asarray(np.clip(idx, 0, T - 1))
            parts.extend(n[:, idx] * inside for n in onsets)                   # (B, T, 16) each
        return xp_.ascontiguousarray(xp_.concatenate(parts, axis=-1))

    def heads(self, y):
        """(9): hit logits, velocities in (0, 1), offsets in (-1/2, 1/2)."""
        return self.head_h(y), self.v_act(self.head_v(y)), 0.5 * self.o_act(self.head_o(y))

    def _decoder_input(self, prev, c_u, extra_t):
        xp_ = nn.get_array_module(prev)
        parts = [prev, c_u] + ([] if extra_t is None else [extra_t])
        return xp_.concatenate(parts, axis=-1)

    def forward(self, x, hvo, eps=None, prev=None, sampling: Sampling | None = None):
        xp_ = nn.get_array_module(self.merge.weight.data)
        dtype = self.merge.weight.dtype
        hvo = xp_.asarray(hvo, dtype=dtype)
        B, T, _ = hvo.shape
        S = self.cfg.sub_steps
        block = self.block_steps
        if T % block:
            raise ValueError(f"{self.label}: {T} steps is not a whole number of {block}-step "
                             + ("sub-sequences" if block == S else "phrases"))
        U = T // S
        b = self.bottleneck(self._merged(x), eps)                                   # (1)-(4)
        mu, log_var = b.mu, b.log_var
        c, s = self.conduct(b.z, U)                                                   # (5), (6)
        h0, c0 = self._split_state(s)
        extras = self.extras(x, T, B)
        keep = None
        if self.training and self.cfg.input_dropout > 0 and nn.is_grad_enabled():
            # "word dropout" (Bowman et al. 2016): hide whole previous steps, so the decoder
            # must lean on c_u (hence on z) and copes with its own errors when free-running
            keep = nn.get_rng(nn.backend.device_of(hvo)).random((B, T, 1), dtype=dtype) \
                >= self.cfg.input_dropout
            keep = keep.astype(dtype)
        if not self.cfg.feedback:
            prev = xp_.zeros((B, T, HVO), dtype)              # (7c) no previous drums
        elif prev is None:
            prev = xp_.concatenate([xp_.zeros((B, 1, HVO), dtype), hvo[:, :-1]], axis=1)  # (7)
            if sampling is not None and sampling.ratio < 1 and self.training:
                prev = scheduled_inputs(self, prev, c, h0, c0, extras, keep, sampling)
            elif keep is not None:
                prev = prev * keep
        else:
            prev = xp_.asarray(prev, dtype=dtype)
            if keep is not None:
                prev = prev * keep
        self.last_prev = prev
        parts = [prev.reshape(B, U, S, HVO), _tile_steps(c, S)]
        if extras is not None:
            parts.append(extras.reshape(B, U, S, -1))
        d = xp_.concatenate(parts, axis=-1)                                          # (7)
        y, _ = self.decoder(d.reshape(B * U, S, -1), (h0, c0))                     # (8)
        y = self.dropout(y.reshape(B, T, -1))
        self.save_context(Context(shape=(B, T, U, S)))
        return (*self.heads(y), mu, log_var)                                        # (9)

    # -- backward ---------------------------------------------------------------------------------
    def backward(self, grads):
        dh_logits, dv, do, dmu_kl, dlog_var_kl = grads
        ctx = self.pop_context()
        ctx.consume(self.label)
        B, T, U, S = ctx.shape
        xp_ = nn.get_array_module(self.merge.weight.data)
        g = dict(self.groups())
        enc_layers = [layer for _, group in self.groups()[4:] for layer in group]
        below_heads = [self.decoder, self.init_state, *g["conductor"], *enc_layers]

        # (15) the three heads read the same y: their input gradients add
        dy = self.head_h.backward(dh_logits)
        dy = dy + self.head_v.backward(self.v_act.backward(dv))
        dy = dy + self.head_o.backward(self.o_act.backward(0.5 * do))
        if not self._trainable(*below_heads):
            return self._stop_after("heads")
        dy = self.dropout.backward(dy)
        # (16) backprop through time in each sub-sequence: input and initial-state gradients
        dd, (dh0, dc0) = self.decoder.backward(dy.reshape(B * U, S, -1))
        if not self._trainable(self.init_state, *g["conductor"], *enc_layers):
            return self._stop_after("decoder")
        L, D = self.cfg.dec_layers, self.cfg.dec_hidden
        ds = xp_.stack([dh0.transpose(1, 0, 2), dc0.transpose(1, 0, 2)], axis=1)   # (B U, 2, L, D)
        ds = ds.reshape(B, U, 2 * L * D)
        # (17) c_u reaches the loss through the decoder's inputs (every step of u) and through
        # its initial state: the two gradients add (the fed drums and extras are data)
        C = self.cfg.conductor
        dc = dd.reshape(B, U, S, -1)[..., HVO:HVO + C].sum(axis=2)
        dc = dc + self.init_state.backward(self.init_act.backward(ds))
        if not self._trainable(*g["conductor"], *enc_layers):
            return self._stop_after("init_state")
        if self.sub_conductor is not None:
            # (18b) each phrase vector p_j is the sub-conductor's input at its P steps
            P = self.cfg.phrase_subs
            dq, _ = self.sub_conductor.backward(dc.reshape(B * (U // P), P, C))
            dc = dq.sum(axis=1).reshape(B, U // P, C)
        # (18) z is the conductor's input at every step: sum the steps' input gradients
        dzs, _ = self.conductor.backward(dc)
        dz = dzs.sum(axis=1)
        if not self._trainable(*enc_layers):
            return self._stop_after("conductor")
        # (19) the sampling path and the KL term join at mu and log_var; (20) both heads read m
        # (variational.md (6)-(8), the KL's gradients given by DrumLoss instead of its own)
        dm = self.bottleneck.backward(dz, kl_weight=0.0, dmu=dmu_kl, dlog_var=dlog_var_kl)
        if not self._trainable(*g["merge"], *g["encoder_lstm"], *g["encoder_conv"]):
            return self._stop_after("bottleneck")
        # (21) through tanh and the merge layer, then split among the encoders
        de = self.merge.backward(self.merge_act.backward(dm))
        if not self._trainable(*g["encoder_lstm"], *g["encoder_conv"]):
            return self._stop_after("merge")
        w = 2 * self.cfg.enc_hidden
        for i, enc in enumerate(self.encoders):
            enc.backward(de[:, i * w:(i + 1) * w])                                  # (22)
        return None

    def _stop_after(self, group: str):
        """Every layer below ``group`` is frozen: drop their saved contexts, return None."""
        names = [n for n, _ in self.groups()]
        for _, layers in self.groups()[names.index(group) + 1:]:
            for layer in layers:
                layer.clear_contexts()
        for layer in (self.dropout, self.init_act, self.merge_act, *self.encoders):
            layer.clear_contexts()
        return None

    # -- inference ------------------------------------------------------------------------------
    def generate(self, x, n_steps: int, z=None, threshold: float = 0.5, temperature: float = 0.0,
                 rng=None, hits=None, start=None) -> dict:
        """Free-running decoding of ``n_steps`` steps (any number: the last sub-sequence is cut).

        z: (B, Z) codes (default: mu of the inputs, the most likely code). Hits: with
        ``temperature`` 0, sigmoid(logit) > threshold (a number, or one per class, (K,));
        otherwise sampled from
        Bernoulli(sigmoid(logit / temperature)) with ``rng``. ``hits`` (B, n_steps, 9) fixes the
        hits instead (humanisation: H known, V and O predicted). ``start`` (B, 27): the drums
        of the step before the first (continuity between windows). ``x`` must cover the
        n_steps when the decoder reads the inputs (``local``). Returns a dict of CPU arrays:
        H, V, O (B, n_steps, 9), as written (V, O zero where no hit), v_raw, o_raw (the heads'
        outputs at every cell) and p (hit probabilities).
        """
        xp_ = nn.get_array_module(self.merge.weight.data)
        dtype = self.merge.weight.dtype
        S = self.cfg.sub_steps
        U = -(-n_steps // S)
        with nn.no_grad():
            if z is None:
                z, _ = self.encode(x)
            z = xp_.asarray(z, dtype=dtype)
            B = z.shape[0]
            c, s = self.conduct(z, U)
            h0, c0 = self._split_state(s)                  # (L, B U, D)
            extras = self.extras(x, U * S, B)
            fixed = None if hits is None else xp_.asarray(hits, dtype)
            threshold = xp_.asarray(threshold, dtype=dtype)

            def choose(t, logit):
                if fixed is not None:
                    return fixed[:, t], sigmoid(logit)
                if temperature > 0:
                    p = sigmoid(logit / temperature)
                    return (xp_.asarray(rng.random(p.shape)) < p).astype(dtype), p
                p = sigmoid(logit)
                return (p > threshold).astype(dtype), p

            out = {k: np.zeros((B, n_steps, K), np.float32) for k in ("H", "V", "O", "v_raw",
                                                                     "o_raw", "p")}
            free_run(self, c, h0, c0, extras, n_steps, choose, start=start, record=out)
        return out

    def log_likelihood(self, x, hvo) -> np.ndarray:
        """log p(H | inputs) of given drums (B, T, 27) under teacher forcing at z = mu, summed over
        steps and classes: one value per window (the ranking score of ``accompany``)."""
        was_training = self.training
        self.eval()
        try:
            with nn.no_grad():
                logits, _, _, _, _ = self.forward(x, hvo)
            logits = nn.to_cpu(logits).astype(np.float64)
            H = np.asarray(hvo)[..., :K].astype(np.float64)
            ll = -((1 - H) * logits + np.logaddexp(0, -logits))       # loss.md (5), negated
            return ll.sum(axis=(1, 2))
        finally:
            self.train(was_training)


# ----------------------------------------------------------------------------------------------
# Building and transferring
# ----------------------------------------------------------------------------------------------
def build_model(preset: str = "cpu", inputs=(88, 88, 88), **overrides) -> DrumVAE:
    """A DrumVAE of a named size (``PRESETS``), with ``inputs`` encoders and any overrides."""
    if preset not in PRESETS:
        raise ValueError(f"unknown model preset {preset!r}: choose one of {sorted(PRESETS)}")
    cfg = DrumConfig(inputs=tuple(inputs), **{**PRESETS[preset], **overrides})
    return DrumVAE(cfg)


#: the layers shared by the humanisation and the accompaniment models
DECODER_SIDE = ("bottleneck", "conductor", "sub_conductor", "init_state", "decoder", "head_h",
                "head_v", "head_o")


def transfer_decoder(src: DrumVAE, dst: DrumVAE, parts=DECODER_SIDE) -> list:
    """Copy the parameters of the named layers from src to dst (the pretrained decoder side);
    returns the names copied. The decoder's first input weights may differ in their number of
    columns (one model reads more data beside c_u, (7)): the columns both have are copied, the
    others keep their initialisation. Other shapes that differ raise a UsageError (a
    ValueError)."""
    sd = src.state_dict()
    copied = []
    own = dict(dst.named_parameters())
    for name, arr in sd.items():
        if name.split(".")[0] in parts and name in own:
            p = own[name]
            xp_ = nn.get_array_module(p.data)
            arr = xp_.asarray(arr, dtype=p.dtype)
            if tuple(p.shape) == tuple(arr.shape):
                p.data = arr.copy()
            elif name == "decoder.weight_ih_l0" and p.shape[0] == arr.shape[0] \
                    and src.cfg.conductor == dst.cfg.conductor \
                    and dst.cfg.position >= src.cfg.position:
                # [prev drums | c_u | pos_t when both read it], then each model's own extras
                n = HVO + dst.cfg.conductor + groove.STEPS_PER_BAR * (
                    src.cfg.position and dst.cfg.position)
                p.data[:, :n] = arr[:, :n]
            else:
                raise UsageError(f"transfer: {name} has shape {tuple(arr.shape)} in the pretrained "
                                 f"model but {tuple(p.shape)} here (use the same model preset)")
            copied.append(name)
    return copied


def load_model(path: str) -> tuple:
    """(DrumVAE in eval mode, checkpoint) from a best.npz / last.npz of this app."""
    ck = nn.load_checkpoint(path)
    if ck.config.get("app") != APP or "model" not in ck.config:
        raise nn.CheckpointError(f"{path}: not a {APP} checkpoint")
    model = DrumVAE(DrumConfig.from_json(ck.config["model"]))
    model.load_state_dict(ck.model)
    model.eval()
    return model, ck


__all__ = ["K", "HVO", "DrumConfig", "PRESETS", "CNNLSTMEncoder", "Sampling", "DrumVAE",
           "build_model",
           "DECODER_SIDE", "transfer_decoder", "load_model"]
