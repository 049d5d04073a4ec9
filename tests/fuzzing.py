"""What the fuzz tests of issue 22 share: real seed files, their mutations, snapshots of the disk,
tiny checkpoints, and the two example budgets.

Each fuzz test runs in two profiles: ``ci`` (a few dozen examples, derandomized, part of the
default run) and ``slow`` (thousands of examples, a fresh random draw each time; ``-m slow``):

    @budgets(ci=40, slow=3000)
    def test_something(budget):
        @fuzz_settings(budget)
        @given(data=mutated(SEEDS))
        def check(data): ...
        check()

Mutations of a real file: truncation, byte flips (random or to 0x00, 0x7f, 0x80, 0xff),
insertions of random bytes, deletions and duplications of a span; half the positions fall in the
first 64 bytes, where the headers are.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from conftest import SHARED_DATA

DATA = SHARED_DATA


def budgets(ci: int, slow: int):
    """Parametrise a test over its example budgets: ``ci`` by default, ``slow`` with -m slow."""
    return pytest.mark.parametrize("budget", [
        pytest.param(ci, id="ci"),
        pytest.param(slow, id="slow", marks=pytest.mark.slow),
    ])


def fuzz_settings(budget: int):
    """Hypothesis settings for one budget: the ci one derandomized (the same examples each run)."""
    small = budget < 500
    return settings(max_examples=budget, deadline=None, derandomize=small, database=None,
                    print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much,
                                           HealthCheck.function_scoped_fixture])


# ----------------------------------------------------------------------------------------------
# Mutations
# ----------------------------------------------------------------------------------------------
def _position(draw, n: int) -> int:
    return draw(st.one_of(st.integers(0, min(n, 64)), st.integers(0, n)))


@st.composite
def mutated(draw, seeds, max_ops: int = 4):
    """One of ``seeds`` (bytes) with 1 to ``max_ops`` mutations."""
    data = bytearray(draw(st.sampled_from(list(seeds))))
    for _ in range(draw(st.integers(1, max_ops))):
        op = draw(st.sampled_from(["truncate", "flip", "set", "insert", "delete", "duplicate"]))
        n = len(data)
        if op == "truncate":
            del data[_position(draw, n):]
        elif op == "insert":
            i = _position(draw, n)
            data[i:i] = draw(st.binary(min_size=1, max_size=24))
        elif n == 0:
            continue
        elif op == "flip":
            data[min(_position(draw, n), n - 1)] ^= draw(st.integers(1, 255))
        elif op == "set":
            data[min(_position(draw, n), n - 1)] = draw(st.sampled_from([0, 0x7F, 0x80, 0xFF]))
        elif op == "delete":
            i = min(_position(draw, n), n - 1)
            del data[i:i + draw(st.integers(1, 32))]
        else:
            i = min(_position(draw, n), n - 1)
            data[i:i] = data[i:i + draw(st.integers(1, 64))]
    return bytes(data)


# ----------------------------------------------------------------------------------------------
# The disk
# ----------------------------------------------------------------------------------------------
def snapshot(*paths) -> dict:
    """{path: sha1} of every file under ``paths`` (files or folders), to show nothing changed."""
    out = {}
    for p in paths:
        p = os.fspath(p)
        files = [p] if os.path.isfile(p) else [os.path.join(d, f) for d, _, fs in os.walk(p)
                                                for f in fs]
        for f in files:
            with open(f, "rb") as fh:
                out[f] = hashlib.sha1(fh.read()).hexdigest()
    return out


# ----------------------------------------------------------------------------------------------
# Seeds: real files from ../shared/data
# ----------------------------------------------------------------------------------------------
def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def abc_seeds() -> list[bytes]:
    """Real tunes as .abc text (Nottingham, O'Neill's, Aird's, MIT, CRE) and two Essen songs."""
    with open(os.path.join(DATA, "folk-abc", "tunes.jsonl"), encoding="utf-8") as f:
        rows = f.readlines()
    tunes = [json.loads(rows[i])["abc"] for i in (0, 1500, 4500, 6000, 7000)]
    return [t.encode("utf-8") for t in tunes] + [esac_seed(2)]


def jsonl_seed(n: int = 4) -> bytes:
    with open(os.path.join(DATA, "folk-abc", "tunes.jsonl"), encoding="utf-8") as f:
        return "".join(next(f) for _ in range(n)).encode("utf-8")


def esac_seed(n_tunes: int = 3) -> bytes:
    """The first ``n_tunes`` songs of the Essen kinder file (latin-1 quirks included)."""
    text = read(os.path.join(DATA, "essen-folksong-abc", "kinder0.abc"))
    starts = [i for i in range(len(text)) if text.startswith(b"X:", i)
              and (i == 0 or text[i - 1:i] == b"\n")]
    return text[:starts[n_tunes]] if len(starts) > n_tunes else text


def midi_seeds() -> list[bytes]:
    """A small tune from CRE (3 tracks), a Groove drum beat and a Beatles multi-track file."""
    out = []
    for folder in ("cre-irish-midi", "groove-midi", "lakh-beatles-midi"):
        files = sorted(os.path.join(d, f) for d, _, fs in os.walk(os.path.join(DATA, folder))
                       for f in fs if f.lower().endswith((".mid", ".midi")))
        out.append(read(min(files[:200], key=os.path.getsize)))
    return out


def wav_seeds(tmp_dir: str) -> list[bytes]:
    """Two FSDD recordings (8 kHz PCM_16), one of them rewritten as 32-bit float and as stereo."""
    import soundfile as sf

    rec = os.path.join(DATA, "fsdd", "recordings")
    a, b = read(os.path.join(rec, "7_jackson_32.wav")), read(os.path.join(rec, "0_george_0.wav"))
    y, sr = sf.read(os.path.join(rec, "3_theo_10.wav"), dtype="float32")
    fl, st2 = os.path.join(tmp_dir, "float.wav"), os.path.join(tmp_dir, "stereo.wav")
    sf.write(fl, y[:2000], sr, subtype="FLOAT")
    sf.write(st2, np.stack([y[:1500], y[:1500] * 0.5], axis=1), sr, subtype="PCM_16")
    return [a, b, read(fl), read(st2)]


# ----------------------------------------------------------------------------------------------
# Tiny checkpoints of the apps (a second to build, never trained)
# ----------------------------------------------------------------------------------------------
def abc_checkpoint(path: str) -> str:
    """An untrained ABC LSTM checkpoint as `train` writes it (model and vocab config)."""
    import nnscratch as nn
    from apps.abc_tunes.data import Vocab
    from apps.abc_tunes.model import ModelConfig, MusicRNN

    vocab = Vocab.from_text("X:1\nM:4/4\nL:1/8\nK:DGm\nABCDEFGabcdefgz|2/ \"[]")
    cfg = ModelConfig(len(vocab), 8, 16, 1, 0.0)
    model = MusicRNN(cfg)
    nn.save_checkpoint(path, model, nn.optim.AdamW(model.parameters()),
                       config={"model": asdict(cfg), "vocab": vocab.to_json(), "hp": {}})
    return path


def digits_checkpoint(path: str) -> str:
    """An untrained spoken-digit MLP as `train` writes it (features, hparams, standardisation)."""
    from apps.audio.features import FeatureConfig, Standardizer
    from apps.digits.data import DIGITS
    from apps.digits.model import HParams, build_model, save_model

    hp, cfg = HParams(model="mlp", hidden=(8,)), FeatureConfig()
    model = build_model(hp, cfg.shape, len(DIGITS))
    norm = Standardizer("band").fit(np.random.default_rng(0).normal(size=(4, *cfg.shape)))
    return save_model(path, model, hp, cfg, norm, "digit", DIGITS)
