"""apps/drums/groove_metrics.py on hand-made grooves: hits per bar, fills, hi-hat velocity
spread, micro-timing per class in milliseconds, pattern change inside and between sections,
and the comparison against the real drums."""
from __future__ import annotations

import numpy as np
import pytest

from apps.drums import groove
from apps.drums import groove_metrics as gm


def _rock(n_windows=2, bars=2):
    H, V, O = groove.rock_beat(16 * bars)
    return (np.repeat(H[None], n_windows, 0), np.repeat(V[None], n_windows, 0),
            np.repeat(O[None], n_windows, 0))


def test_the_drum_machine_has_no_groove():
    H, V, O = _rock()
    s = gm.groove_stats(H, V, O, bpm=np.full(2, 120.0), song=np.array([0, 0]))
    assert s["hits_per_bar"][:3] == [2.0, 2.0, 8.0] and s["hits_per_bar_total"] == 12.0
    assert s["fill_share"] == 0.0 and s["hihat_velocity_spread"] == 0.0
    assert s["bar_change"] == 0.0 and s["section_change"] == 0.0
    assert s["timing_mean_ms"][0] == 0.0 and s["timing_spread_ms"][2] == 0.0
    assert s["timing_mean_ms"][4] is None          # no tom: undefined, not 0


def test_fills_velocities_timing_and_changes():
    H, V, O = _rock()
    H, V, O = H.copy(), V.copy(), O.copy()
    H[0, 16 + 12:16 + 16, 1] = 1                    # window 0, bar 2: snares all through beat 4
    H[1, 3, 4] = H[1, 7, 5] = 1                     # window 1, bar 1: two toms
    V[0, ::2, 2] = np.where(np.arange(16) % 2, 0.5, 1.0)   # accents on the hi-hat
    O[:, 4, 1] = 0.1                                # the snare on 2 is late by 0.1 step
    bpm = np.array([120.0, 60.0])
    s = gm.groove_stats(H, V, O, bpm=bpm, song=np.array([0, 0]))
    np.testing.assert_array_equal(gm.fills(H), [[False, True], [True, False]])
    assert s["fill_share"] == 0.5
    assert s["hihat_velocity_spread"] == pytest.approx(np.std([127, 63.5] * 8) / 2)
    # 0.1 step = 12.5 ms at 120 bpm, 25 ms at 60; the other snares on time
    snare_ms = np.concatenate([
        [12.5 if t == 4 else 0.0 for t in np.flatnonzero(H[0, :, 1])],
        [25.0 if t == 4 else 0.0 for t in np.flatnonzero(H[1, :, 1])]])
    assert s["timing_mean_ms"][1] == pytest.approx(snare_ms.mean(), abs=1e-3)
    assert s["timing_spread_ms"][1] == pytest.approx(snare_ms.std(), abs=1e-3)
    # bar to bar: window 0 changes 3 cells (step 12 had its snare), window 1 changes 2
    assert s["bar_change"] == pytest.approx(2.5)
    # between the two windows (one song): the average bars differ by 1/2 in those 5 cells
    assert s["section_change"] == pytest.approx(5 * 0.5)
    assert gm.groove_stats(H, V, O, song=np.array([0, 1]))["section_change"] is None


def test_compare_scores_against_the_real_drums():
    rng = np.random.default_rng(0)
    N = 6
    real = (rng.random((N, 32, 9)) < 0.2).astype(np.float32)
    song = np.array([0, 0, 0, 1, 1, 1])
    follow = real.copy()                             # changes where the real drums change
    sets = {"real": (real, real * 0.8, real * 0), "same": (follow, follow * 0.8, follow * 0),
            "machine": _rock(N)}
    out = gm.compare(sets, song=song)
    assert out["same"]["section_change_corr"] == pytest.approx(1.0)
    assert out["same"]["hits_per_bar_abs_diff"] == 0.0
    assert out["machine"]["section_change_corr"] is None       # never changes: undefined
    assert out["machine"]["hits_per_bar_abs_diff"] > 0
    lines = gm.format_table(out)
    assert len(lines) == 1 + 3 + 1 + 3 and "machine" in lines[3]
    with pytest.raises(ValueError, match="whole number of 4/4 bars"):
        gm.groove_stats(real[:, :20], real[:, :20], real[:, :20])
