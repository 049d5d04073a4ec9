"""Two MLP variational auto-encoders for Essen melodies, as on the 2024 slides (seed 002):
one for the notes (pitches), one for the rhythm (durations).

Data (apps/music/esac.py: filtered, transposed to C major / A minor): each song's written
notes and rests, cut into segments of ``--max-len`` events (default 64; the last one padded):

* notes VAE: pitch 50-97, rest = 99, padded with rests (99), normalised by (v - 50) / 49;
* rhythm VAE: durations [0.25, 0.5, 0.75, 1, 1.5, 2, 3, 4] -> classes 0-7, padded with whole
  notes (7), normalised by c / 7.

Model (``MelodyVAE``), for both:
    encoder  input -> 500, LeakyReLU(0.2) -> 500, LeakyReLU(0.2) -> (mu, log_var)
    sample   z = mu + exp(0.5 log_var) * eps                      (nnscratch Reparameterize)
    decoder  z -> 500, LeakyReLU(0.2) -> 500, LeakyReLU(0.2) -> input, sigmoid
Loss per song = binary cross-entropy of the sigmoid output against the normalised input (summed
over positions) + KL(q(z|x) || N(0, I)). The sigmoid is fused into the loss
(``BCEWithLogitsLoss``: the same function, computed stably); ``decode`` applies it.
Its backward is written by hand in ``MelodyVAE.backward``: the decoder, the sampling layer, then
the two heads, whose gradients are summed where they join on the encoder's last hidden layer.

Presets: ``slides`` is the slides' configuration (notes: latent 250, Adam lr 1e-5, weight decay
1e-6, 200 epochs, batch 32; rhythm: latent 300, lr 1e-3, 8 epochs, batch 64; KL weight 1).
With it both VAEs collapse to the average melody (KL ~2-4 nats: the BCE of a continuous target
is so flat that encoding anything costs more KL than it saves): on held-out Han songs the notes
VAE reconstructs 6.6 % of pitches (always answering each position's most common pitch: 5.9 %)
and the rhythm VAE 17.8 % of durations (most common: 35.2 %). ``tuned`` (default) keeps the
architecture and the loss but weights the KL term by beta = 1e-4, trains longer (notes 150
epochs, lr 1e-3 divided by 3.3 every 50; rhythm 60 epochs, every 20) and samples z from a
Gaussian fitted to the training codes (``--prior fitted``; ``standard`` draws N(0, I)):
held-out accuracy 26.7 % of pitches (63.6 % within a semitone) and 78.9 % of durations.
The slides write z = mean + logvar * eps; the reparameterisation here is the standard one.

    python apps/melody_vae.py train --subset han            # both VAEs, samples, interpolation
    python apps/melody_vae.py train --preset slides
    python apps/melody_vae.py sample --run runs/melody_vae/<time> --n 4
    python apps/melody_vae.py interpolate --run runs/melody_vae/<time> --a 0 --b 1 --steps 5

Writes in the run folder: notes.npz and rhythm.npz (checkpoints, every epoch; ``--resume``),
curves.png, reconstruction.png, sample_*.mid, interp_*.mid, summary.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

if __package__ in (None, ""):  # run as a script: make the project root importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import nnscratch as nn  # noqa: E402
from apps.music import esac, midi  # noqa: E402
from nnscratch import optim  # noqa: E402

APP = "melody_vae"
PITCH_LOW, PITCH_HIGH, REST_CODE = 50, 97, 99
DURATIONS = esac.ACCEPTED_DURATIONS            # class c <-> DURATIONS[c] quarter lengths
PAD_NOTE, PAD_CLASS = REST_CODE, len(DURATIONS) - 1

PRESETS = {
    "slides": {"notes": {"hidden": 500, "latent": 250, "lr": 1e-5, "weight_decay": 1e-6,
                         "epochs": 200, "batch": 32, "beta": 1.0, "lr_step": 0, "lr_gamma": 1.0},
               "rhythm": {"hidden": 500, "latent": 300, "lr": 1e-3, "weight_decay": 0.0,
                          "epochs": 8, "batch": 64, "beta": 1.0, "lr_step": 0, "lr_gamma": 1.0}},
    "tuned": {"notes": {"hidden": 500, "latent": 250, "lr": 1e-3, "weight_decay": 1e-6,
                        "epochs": 150, "batch": 32, "beta": 1e-4, "lr_step": 50, "lr_gamma": 0.3},
              "rhythm": {"hidden": 500, "latent": 300, "lr": 1e-3, "weight_decay": 0.0,
                         "epochs": 60, "batch": 64, "beta": 1e-4, "lr_step": 20, "lr_gamma": 0.3}},
}


# ----------------------------------------------------------------------------------------------
# Encoding
# ----------------------------------------------------------------------------------------------
def song_codes(song) -> tuple:
    """(note codes, duration classes) of a song's written events; ValueError if out of range."""
    notes, classes = [], []
    for p, ql, _ in song.events:
        if p is None:
            notes.append(REST_CODE)
        elif PITCH_LOW <= p <= PITCH_HIGH:
            notes.append(int(p))
        else:
            raise ValueError(f"{song.ref}: pitch {p} is outside the notes VAE's range "
                             f"{PITCH_LOW}-{PITCH_HIGH}")
        if float(ql) not in DURATIONS:
            raise ValueError(f"{song.ref}: duration {ql} is not one of the 8 classes {DURATIONS}")
        classes.append(DURATIONS.index(float(ql)))
    return notes, classes


def segments(songs, max_len: int) -> tuple:
    """Cut every song into segments of max_len events, padding the last: (notes, rhythm, lengths,
    song index) as int arrays (S, max_len), (S, max_len), (S,), (S,). Songs with pitches out of
    range are skipped (their count is returned as the 5th element)."""
    N, R, L, idx, skipped = [], [], [], [], 0
    for k, s in enumerate(songs):
        try:
            notes, classes = song_codes(s)
        except ValueError:
            skipped += 1
            continue
        for a in range(0, len(notes), max_len):
            n, c = notes[a:a + max_len], classes[a:a + max_len]
            L.append(len(n))
            N.append(n + [PAD_NOTE] * (max_len - len(n)))
            R.append(c + [PAD_CLASS] * (max_len - len(c)))
            idx.append(k)
    return (np.array(N, dtype=np.int64), np.array(R, dtype=np.int64), np.array(L, dtype=np.int64),
            np.array(idx, dtype=np.int64), skipped)


def normalise(codes, kind: str):
    if kind == "notes":
        return (codes - PITCH_LOW) / float(REST_CODE - PITCH_LOW)
    return codes / float(len(DURATIONS) - 1)


def denormalise(values, kind: str) -> np.ndarray:
    """Sigmoid outputs in [0, 1] -> nearest valid codes (a value nearer 99 than 97 is a rest)."""
    v = np.asarray(values, dtype=np.float64)
    if kind == "notes":
        raw = PITCH_LOW + v * (REST_CODE - PITCH_LOW)
        return np.where(raw > 98.0, REST_CODE, np.clip(np.rint(raw), PITCH_LOW, PITCH_HIGH)).astype(np.int64)
    return np.clip(np.rint(v * (len(DURATIONS) - 1)), 0, len(DURATIONS) - 1).astype(np.int64)


def check_note_codes(codes) -> None:
    """A clear error for a pitch outside the vocabulary (50-97, rest 99)."""
    for c in np.ravel(codes):
        if not (PITCH_LOW <= c <= PITCH_HIGH or c == REST_CODE):
            raise ValueError(f"pitch {int(c)} is outside the notes VAE's vocabulary: pitches "
                             f"{PITCH_LOW}-{PITCH_HIGH} and the rest code {REST_CODE}")


# ----------------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------------
class MelodyVAE(nn.Layer):
    """The slides' MLP VAE; forward returns (logits, mu, log_var).

    Shapes: x (batch, input_dim) in [0, 1]; mu, log_var, z (batch, latent);
    logits (batch, input_dim), the decoder's output before its final sigmoid.

    ``backward((dlogits, dmu, dlog_var))`` takes dL/dlogits from the reconstruction loss and
    dL/dmu, dL/dlog_var from the KL term (either may be None), and returns dL/dx (None while
    the first layer's ``input_grad`` is False, as it is for data).
    """

    def __init__(self, input_dim: int, hidden: int = 500, latent: int = 250, alpha: float = 0.2):
        super().__init__()
        self.input_dim, self.hidden, self.latent, self.alpha = input_dim, hidden, latent, alpha
        self.encoder = nn.Sequential(nn.Dense(input_dim, hidden), nn.LeakyReLU(alpha),
                                     nn.Dense(hidden, hidden), nn.LeakyReLU(alpha))
        self.encoder[0].input_grad = False
        self.fc_mu = nn.Dense(hidden, latent)
        self.fc_log_var = nn.Dense(hidden, latent)
        self.sample = nn.Reparameterize()
        self.decoder = nn.Sequential(nn.Dense(latent, hidden), nn.LeakyReLU(alpha),
                                     nn.Dense(hidden, hidden), nn.LeakyReLU(alpha),
                                     nn.Dense(hidden, input_dim))

    def forward(self, x, eps=None):
        self.check_input(x, ndim=2, last_dim=self.input_dim)
        h = self.encoder(x)
        mu, log_var = self.fc_mu(h), self.fc_log_var(h)
        z = self.sample(mu, log_var, eps)           # z = mu + exp(0.5 log_var) eps
        return self.decoder(z), mu, log_var

    def backward(self, grads):
        dlogits, dmu_kl, dlog_var_kl = grads
        dz = self.decoder.backward(dlogits)
        dmu, dlog_var = self.sample.backward(dz)    # dmu = dz; dlog_var = dz * 0.5 sigma eps
        if dmu_kl is not None:                      # the KL term reaches mu and log_var directly:
            dmu = dmu + dmu_kl                      # two paths join, their gradients add
        if dlog_var_kl is not None:
            dlog_var = dlog_var + dlog_var_kl
        dh = self.fc_mu.backward(dmu) + self.fc_log_var.backward(dlog_var)  # both heads read h
        return self.encoder.backward(dh)

    def encode(self, x):
        """(mu, log_var) as CPU arrays, without saving contexts (x: NumPy or device array)."""
        with nn.no_grad():
            h = self.encoder(nn.to_device(x))
            return nn.to_cpu(self.fc_mu(h)), nn.to_cpu(self.fc_log_var(h))

    def decode(self, z):
        """Sigmoid outputs in [0, 1] for latent codes z (batch, latent), as a CPU array."""
        with nn.no_grad():
            return nn.to_cpu(nn.functions.sigmoid(self.decoder(nn.to_device(z))))

    def extra_repr(self) -> str:
        return f"input={self.input_dim}, hidden={self.hidden}, latent={self.latent}"


class VAELoss:
    """Per-song loss averaged over the batch: sum over positions of BCE + beta * KL.

    ``loss, parts = vl(logits, mu, log_var, x)``; ``grads = vl.backward()`` gives the tuple that
    ``MelodyVAE.backward`` takes.
    """

    def __init__(self, beta: float = 1.0):
        self.recon = nn.BCEWithLogitsLoss(reduction="sum")
        self.kl = nn.KLDivergence(reduction="mean")
        self.beta = beta
        self.batch = 1

    def __call__(self, logits, mu, log_var, x):
        self.batch = x.shape[0]
        rec = self.recon(logits, x) / self.batch
        kl = self.kl(mu, log_var)
        return rec + self.beta * kl, {"recon": rec, "kl": kl}

    def backward(self):
        dlogits = self.recon.backward(1.0 / self.batch)
        dmu, dlog_var = self.kl.backward(self.beta)
        return dlogits, dmu, dlog_var


def train_step(model, loss_fn, opt, x, eps=None) -> tuple:
    x = nn.to_device(x)
    logits, mu, log_var = model(x, eps)
    loss, parts = loss_fn(logits, mu, log_var, x)
    model.backward(loss_fn.backward())
    opt.step()
    opt.zero_grad()
    return loss, parts


def reconstruct(model, x) -> np.ndarray:
    """Sigmoid output at z = mu (the most likely code)."""
    mu, _ = model.encode(x)
    return model.decode(mu)


def recon_accuracy(model, codes, lengths, kind: str) -> dict:
    """Token accuracy of the reconstructions: on the songs' real events, and on all positions;
    ``within_1``: a pitch off by at most one semitone (or class off by one) counts, a rest must
    be a rest."""
    out = denormalise(reconstruct(model, normalise(codes, kind).astype(np.float32)), kind)
    mask = np.arange(codes.shape[1])[None, :] < lengths[:, None]
    hit = out == codes
    near = np.abs(out - codes) <= 1
    if kind == "notes":
        near &= (out == REST_CODE) == (codes == REST_CODE)
    return {"accuracy": float(hit[mask].mean()), "accuracy_with_padding": float(hit.mean()),
            "within_1": float(near[mask].mean()), "tokens": int(mask.sum())}


def mean_baseline(train_codes, train_len, codes, lengths, kind: str) -> dict:
    """Accuracy of always answering the training set's most common code at each position."""
    mode = np.array([np.bincount(train_codes[:, j]).argmax() for j in range(codes.shape[1])])
    mask = np.arange(codes.shape[1])[None, :] < lengths[:, None]
    hit = mode[None, :] == codes
    return {"accuracy": float(hit[mask].mean()), "accuracy_with_padding": float(hit.mean())}


# ----------------------------------------------------------------------------------------------
# Melodies out
# ----------------------------------------------------------------------------------------------
def to_melody(notes, classes) -> tuple:
    """Note codes and duration classes -> (pitches or None, durations in beats), trailing
    padding (rest + whole note) removed."""
    notes, classes = list(map(int, notes)), list(map(int, classes))
    end = len(notes)
    while end > 0 and notes[end - 1] == PAD_NOTE and classes[end - 1] == PAD_CLASS:
        end -= 1
    pitches = [None if n == REST_CODE else n for n in notes[:end]]
    return pitches, [DURATIONS[c] for c in classes[:end]]


def write_melody(path: str, pitches, durs, tempo: float = 100.0) -> str:
    if not pitches:
        pitches, durs = [None], [4.0]
    return midi.write_monophonic(path, pitches, durs, tempo=tempo, name="melody VAE")


def sample_melodies(notes_vae, rhythm_vae, n: int, rng, priors=None) -> list:
    """n melodies from z ~ N(0, I) in both latent spaces, or from the fitted priors
    ``{'notes': (mean, std), 'rhythm': (mean, std)}`` (diagonal Gaussians over the training
    codes: with a small KL weight the codes do not fill N(0, I), and samples from it are off the
    data; sampling the codes' own spread is the "ex-post density" fix of Ghosh et al. 2020)."""
    def draw(vae, kind):
        eps = rng.standard_normal((n, vae.latent))
        if priors and priors.get(kind) is not None:
            mean, std = priors[kind]
            eps = mean + std * eps
        return eps.astype(np.float32)

    zn, zr = draw(notes_vae, "notes"), draw(rhythm_vae, "rhythm")
    notes = denormalise(notes_vae.decode(zn), "notes")
    rhythm = denormalise(rhythm_vae.decode(zr), "rhythm")
    return [to_melody(a, b) for a, b in zip(notes, rhythm)]


def interpolate(notes_vae, rhythm_vae, notes_a, rhythm_a, notes_b, rhythm_b, steps: int = 5) -> list:
    """Melodies decoded along the straight line between the codes (mu) of songs a and b."""
    check_note_codes(notes_a), check_note_codes(notes_b)
    xa = normalise(np.array([notes_a, notes_b]), "notes").astype(np.float32)
    xr = normalise(np.array([rhythm_a, rhythm_b]), "rhythm").astype(np.float32)
    mn, _ = notes_vae.encode(xa)
    mr, _ = rhythm_vae.encode(xr)
    out = []
    for t in np.linspace(0.0, 1.0, steps):
        zn = ((1 - t) * mn[0] + t * mn[1])[None].astype(np.float32)
        zr = ((1 - t) * mr[0] + t * mr[1])[None].astype(np.float32)
        out.append(to_melody(denormalise(notes_vae.decode(zn), "notes")[0],
                             denormalise(rhythm_vae.decode(zr), "rhythm")[0]))
    return out


# ----------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------
def make_run_dir(out: str | None) -> str:
    path = out or os.path.join("runs", APP, time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(path, exist_ok=True)
    return path


def fit(kind: str, cfg: dict, x_train, x_val, codes_val, len_val, ckpt_path: str, args,
        resume: bool = False) -> tuple:
    """Train one VAE; checkpoint every epoch. Returns (model, history)."""
    from tqdm import tqdm  # noqa: PLC0415

    model = MelodyVAE(x_train.shape[1], cfg["hidden"], cfg["latent"])
    opt = optim.Adam(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    sched = optim.StepLR(opt, cfg["lr_step"], cfg["lr_gamma"]) if cfg.get("lr_step") else None
    loss_fn = VAELoss(cfg["beta"])
    history, start = [], 1
    if resume and os.path.isfile(ckpt_path):
        ck = nn.load_checkpoint(ckpt_path, model, opt)
        history, start = ck.extra.get("history", []), int(ck.extra.get("epoch", 0)) + 1
        if sched is not None and ck.extra.get("schedule"):
            sched.load_state_dict(ck.extra["schedule"])
        print(f"[{kind}] resumed from {ckpt_path} at epoch {start}")
    rng = np.random.default_rng(args.seed + start + (0 if kind == "notes" else 1000))
    epochs = cfg["epochs"] if args.epochs is None else args.epochs
    bar = tqdm(range(start, epochs + 1), desc=f"{kind} VAE", unit="epoch", disable=not args.progress)
    for epoch in bar:
        t0 = time.perf_counter()
        order = rng.permutation(len(x_train))
        tot = {"loss": 0.0, "recon": 0.0, "kl": 0.0}
        for s in range(0, len(order), cfg["batch"]):
            xb = x_train[order[s:s + cfg["batch"]]]
            loss, parts = train_step(model, loss_fn, opt, xb)
            tot["loss"] += loss * len(xb)
            tot["recon"] += parts["recon"] * len(xb)
            tot["kl"] += parts["kl"] * len(xb)
        secs = time.perf_counter() - t0
        lr = opt.lr
        if sched is not None:
            sched.step()
        tot = {k: v / len(order) for k, v in tot.items()}
        model.eval()
        with nn.no_grad():
            xv = nn.to_device(x_val)
            lg, mu, lv = model(xv)
            vloss, vparts = loss_fn(lg, mu, lv, xv)
        model.train()
        acc = recon_accuracy(model, codes_val, len_val, kind)
        history.append({"epoch": epoch, "train": tot, "val_loss": vloss, "val_recon": vparts["recon"],
                        "val_kl": vparts["kl"], "val_accuracy": acc["accuracy"], "lr": lr,
                        "segments_per_s": len(order) / secs})
        bar.set_postfix(loss=f"{tot['loss']:.2f}", val=f"{vloss:.2f}", acc=f"{acc['accuracy']:.3f}",
                        seg_s=f"{len(order) / secs:,.0f}")
        if epoch % max(1, args.log_every) == 0 or epoch == epochs:
            print(f"[{kind}] epoch {epoch:4d}/{epochs}: train {tot['loss']:.3f} (recon "
                  f"{tot['recon']:.3f}, KL {tot['kl']:.3f})  val {vloss:.3f}  held-out token "
                  f"accuracy {acc['accuracy']:.4f}  ({len(order) / secs:,.0f} segments/s)", flush=True)
        nn.save_checkpoint(ckpt_path, model, opt, config={"kind": kind, "input_dim": model.input_dim,
                                                          **cfg},
                           extra={"epoch": epoch, "history": history,
                                  "schedule": sched.state_dict() if sched is not None else None},
                           arrays=latent_prior(model, x_train))
    return model, history


def latent_prior(model, x) -> dict:
    """Mean and std of the codes mu(x) over the training set (the fitted sampling prior)."""
    mu = np.concatenate([model.encode(x[s:s + 1024])[0] for s in range(0, len(x), 1024)])
    return {"latent_mean": mu.mean(0), "latent_std": mu.std(0) + 1e-6}


def load_vae(path: str) -> tuple:
    """(model in eval mode, fitted prior (mean, std) or None) from a checkpoint."""
    ck = nn.load_checkpoint(path)
    c = ck.config
    model = MelodyVAE(c["input_dim"], c["hidden"], c["latent"])
    model.load_state_dict(ck.model)
    model.eval()
    prior = None
    if "latent_mean" in ck.arrays:
        prior = (ck.arrays["latent_mean"], ck.arrays["latent_std"])
    return model, prior


def plot_curves(hist: dict, path: str) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, kind in zip(axes, ("notes", "rhythm")):
        h = hist[kind]
        ep = [e["epoch"] for e in h]
        ax.plot(ep, [e["train"]["loss"] for e in h], label="train loss")
        ax.plot(ep, [e["val_loss"] for e in h], label="val loss")
        ax.set_xlabel("epoch"), ax.set_ylabel("BCE + KL per segment")
        ax2 = ax.twinx()
        ax2.plot(ep, [e["val_accuracy"] for e in h], "g--", label="val token accuracy")
        ax2.set_ylim(0, 1), ax2.set_ylabel("accuracy")
        ax.set_title(f"{kind} VAE")
        ax.legend(loc="upper center"), ax2.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_reconstruction(orig_n, rec_n, orig_r, rec_r, length, path: str) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, (a, b) = plt.subplots(2, 1, figsize=(11, 5), sharex=True)
    k = np.arange(length)
    a.step(k, orig_n[:length], where="mid", label="original")
    a.step(k, rec_n[:length], where="mid", label="reconstruction")
    a.set_ylabel("pitch (99 = rest)"), a.legend()
    b.step(k, orig_r[:length], where="mid", label="original")
    b.step(k, rec_r[:length], where="mid", label="reconstruction")
    b.set_ylabel("duration class"), b.set_xlabel("event")
    fig.suptitle("held-out song: original and VAE reconstruction")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def train(args) -> dict:
    nn.manual_seed(args.seed)
    run = make_run_dir(args.out)
    t0 = time.perf_counter()
    songs, stats = esac.load_songs(args.subset, data_dir=args.data, limit=args.limit,
                                   progress=args.progress)
    order = np.random.default_rng(args.seed).permutation(len(songs))
    n_val = max(1, int(round(len(songs) * args.val_frac)))
    val_songs = [songs[i] for i in order[:n_val]]
    train_songs = [songs[i] for i in order[n_val:]]
    Nt, Rt, Lt, _, skip_t = segments(train_songs, args.max_len)
    Nv, Rv, Lv, _, skip_v = segments(val_songs, args.max_len)
    print(f"data: {args.subset}: {stats['kept']} songs kept of {stats['tunes']} (dropped "
          f"{stats['dropped']}); {len(train_songs)} train / {len(val_songs)} held-out songs -> "
          f"{len(Nt)} / {len(Nv)} segments of {args.max_len} events ({skip_t + skip_v} songs "
          f"skipped for pitches outside {PITCH_LOW}-{PITCH_HIGH})")
    preset = PRESETS[args.preset]
    cfgs = {k: dict(preset[k]) for k in ("notes", "rhythm")}
    if args.notes_lr:
        cfgs["notes"]["lr"] = args.notes_lr
    if args.rhythm_lr:
        cfgs["rhythm"]["lr"] = args.rhythm_lr
    if args.beta is not None:
        cfgs["notes"]["beta"] = cfgs["rhythm"]["beta"] = args.beta
    data = {"notes": (Nt, Nv, Lv), "rhythm": (Rt, Rv, Lv)}
    models, hist, results = {}, {}, {}
    for kind in ("notes", "rhythm"):
        tr_codes, va_codes, va_len = data[kind]
        x_tr = normalise(tr_codes, kind).astype(np.float32)
        x_va = normalise(va_codes, kind).astype(np.float32)
        ckpt = os.path.join(run, f"{kind}.npz")
        models[kind], hist[kind] = fit(kind, cfgs[kind], x_tr, x_va, va_codes, va_len, ckpt, args,
                                       resume=args.resume)
        results[kind] = {"held_out": recon_accuracy(models[kind], va_codes, va_len, kind),
                         "train": recon_accuracy(models[kind], tr_codes, Lt, kind),
                         "most_common_per_position": mean_baseline(tr_codes, Lt, va_codes, va_len, kind),
                         "final_val_loss": hist[kind][-1]["val_loss"] if hist[kind] else None}
        models[kind].eval()
        print(f"[{kind}] held-out reconstruction token accuracy "
              f"{results[kind]['held_out']['accuracy']:.4f} (within one step "
              f"{results[kind]['held_out']['within_1']:.4f}; with padding "
              f"{results[kind]['held_out']['accuracy_with_padding']:.4f}; train "
              f"{results[kind]['train']['accuracy']:.4f}; most-common-per-position baseline "
              f"{results[kind]['most_common_per_position']['accuracy']:.4f})")
    # Held-out codes ride along in the notes checkpoint's folder for `interpolate`.
    np.savez(os.path.join(run, "heldout.npz"), notes=Nv, rhythm=Rv, lengths=Lv)
    files = [os.path.join(run, f) for f in ("notes.npz", "rhythm.npz", "heldout.npz")]
    curves = os.path.join(run, "curves.png")
    plot_curves(hist, curves)
    rec_n = denormalise(reconstruct(models["notes"], normalise(Nv[:1], "notes").astype(np.float32)), "notes")[0]
    rec_r = denormalise(reconstruct(models["rhythm"], normalise(Rv[:1], "rhythm").astype(np.float32)), "rhythm")[0]
    rec_png = os.path.join(run, "reconstruction.png")
    plot_reconstruction(Nv[0], rec_n, Rv[0], rec_r, int(Lv[0]), rec_png)
    files += [curves, rec_png]
    rng = np.random.default_rng(args.seed)
    priors = None
    if args.prior == "fitted":
        priors = {k: (lambda a: (a["latent_mean"], a["latent_std"]))(
            latent_prior(models[k], normalise(data[k][0], k).astype(np.float32)))
            for k in ("notes", "rhythm")}
    samples = []
    for i, (p, d) in enumerate(sample_melodies(models["notes"], models["rhythm"], args.samples, rng,
                                               priors)):
        path = write_melody(os.path.join(run, f"sample_{i}.mid"), p, d)
        samples.append({"file": path, "notes": sum(x is not None for x in p), "events": len(p)})
        files.append(path)
    interp = []
    a, b = 0, min(1, len(Nv) - 1)
    for k, (p, d) in enumerate(interpolate(models["notes"], models["rhythm"], Nv[a], Rv[a], Nv[b],
                                           Rv[b], args.interp_steps)):
        path = write_melody(os.path.join(run, f"interp_{k}.mid"), p, d)
        interp.append({"file": path, "notes": sum(x is not None for x in p)})
        files.append(path)
    summary = {
        "app": APP, "subset": args.subset, "preset": args.preset, "config": cfgs,
        "max_len": args.max_len, "prior": args.prior,
        "data": {"songs": stats, "train_songs": len(train_songs), "held_out_songs": len(val_songs),
                 "train_segments": int(len(Nt)), "held_out_segments": int(len(Nv))},
        "reconstruction": results, "samples": samples, "interpolation": interp,
        "history": hist, "files": files, "seconds": round(time.perf_counter() - t0, 1),
    }
    with open(os.path.join(run, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(f"wrote {len(files)} files and summary.json to {run}")
    return summary


def sample_cmd(args) -> list:
    (nv, n_prior), (rv, r_prior) = (load_vae(os.path.join(args.run, f"{k}.npz"))
                                    for k in ("notes", "rhythm"))
    priors = {"notes": n_prior, "rhythm": r_prior} if args.prior == "fitted" else None
    out = args.out or args.run
    paths = []
    for i, (p, d) in enumerate(sample_melodies(nv, rv, args.n, np.random.default_rng(args.seed),
                                               priors)):
        path = write_melody(os.path.join(out, f"sample_{args.seed}_{i}.mid"), p, d)
        paths.append(path)
        print(f"wrote {path}: {sum(x is not None for x in p)} notes")
    return paths


def interpolate_cmd(args) -> list:
    nv, rv = (load_vae(os.path.join(args.run, f"{k}.npz"))[0] for k in ("notes", "rhythm"))
    held = np.load(os.path.join(args.run, "heldout.npz"))
    n = len(held["notes"])
    for i in (args.a, args.b):
        if not 0 <= i < n:
            raise ValueError(f"song index {i} out of range: the run holds {n} held-out segments")
    out = args.out or args.run
    paths = []
    for k, (p, d) in enumerate(interpolate(nv, rv, held["notes"][args.a], held["rhythm"][args.a],
                                           held["notes"][args.b], held["rhythm"][args.b], args.steps)):
        path = write_melody(os.path.join(out, f"interp_{args.a}_{args.b}_{k}.mid"), p, d)
        paths.append(path)
        print(f"wrote {path}: {sum(x is not None for x in p)} notes")
    return paths


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train the notes and rhythm VAEs, sample, interpolate")
    t.add_argument("--subset", default="han", help="Essen subset: han, kinder, german, all")
    t.add_argument("--data", default=None, help="Essen folder (default ../shared/data/"
                   "essen-folksong-abc; env NNSCRATCH_DATA_ESSEN)")
    t.add_argument("--limit", type=int, default=None, help="first N tunes per file (quick runs)")
    t.add_argument("--preset", choices=sorted(PRESETS), default="tuned")
    t.add_argument("--epochs", type=int, default=None, help="override both VAEs' epochs")
    t.add_argument("--notes-lr", type=float, default=None)
    t.add_argument("--rhythm-lr", type=float, default=None)
    t.add_argument("--beta", type=float, default=None,
                   help="weight of the KL term for both VAEs (default: the preset's)")
    t.add_argument("--prior", choices=["fitted", "standard"], default="fitted",
                   help="sample z from N(0, I) or from the training codes' Gaussian")
    t.add_argument("--max-len", type=int, default=64, help="events per segment")
    t.add_argument("--val-frac", type=float, default=0.1)
    t.add_argument("--samples", type=int, default=4)
    t.add_argument("--interp-steps", type=int, default=5)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--log-every", type=int, default=10)
    t.add_argument("--resume", action="store_true", help="continue from the checkpoints in --out")
    t.add_argument("--out", default=None, help="run folder (default runs/melody_vae/<time>)")
    t.add_argument("--no-progress", dest="progress", action="store_false")
    s = sub.add_parser("sample", help="sample new melodies (notes + rhythm) to MIDI")
    s.add_argument("--run", required=True, help="a training run folder")
    s.add_argument("--n", type=int, default=4)
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--prior", choices=["fitted", "standard"], default="fitted")
    s.add_argument("--out", default=None)
    i = sub.add_parser("interpolate", help="decode melodies between two held-out songs")
    i.add_argument("--run", required=True)
    i.add_argument("--a", type=int, default=0)
    i.add_argument("--b", type=int, default=1)
    i.add_argument("--steps", type=int, default=5)
    i.add_argument("--out", default=None)
    args = p.parse_args(argv)
    if args.cmd == "train" and args.resume and not args.out:
        p.error("--resume needs --out (the run folder holding notes.npz and rhythm.npz)")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        {"train": train, "sample": sample_cmd, "interpolate": interpolate_cmd}[args.cmd](args)
    except (ValueError, FileNotFoundError, nn.CheckpointError) as exc:  # bad input: say why
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
