"""Generation of apps/drum_accompaniment.py: drums for a whole song, written to MIDI, with a
piano-roll PNG and a WAV rendering (the ``accompany`` command).

The song's 4/4 sections become input rolls (steps, 3 families, dd.N_KEYS keys), cut into
windows of T steps (or one piece per section); each window gets ``candidates`` drum parts,
(H, V, O) arrays of (T, K), from codes drawn around the most likely one, ranked by the learned
judge (judge.py), by distance to the training set's beat template (the seed's discriminant) or
by the model's likelihood; the best is turned into notes and appended to a copy of the song as
a channel-10 track. OUT.png shows the new drums under the song's piano, guitar and bass;
OUT.wav is rendered by fluidsynth or timidity when one is installed (else a one-line hint).
"""
from __future__ import annotations

import os

import numpy as np

import nnscratch as nn
from apps.common.errors import UsageError
from apps.music import midi, render

from . import data as dd
from . import groove
from .judge import judge_features, judge_path, load_judge, onset_density
from .model import load_model


def _pad_steps(a, n: int, axis: int = 1):
    if a.shape[axis] >= n:
        return a
    pad = [(0, 0)] * a.ndim
    pad[axis] = (0, n - a.shape[axis])
    return np.pad(a, pad)


def draw_candidates(model, xs, n_steps: int, candidates: int, threshold: float, rng,
                    temperature: float = 0.0, start=None) -> dict:
    """``candidates`` free-running drum parts for each of B windows: inputs ``xs`` (a list of E
    arrays (B, T, F)), codes z = mu + exp(log_var / 2) eps with eps ~ N(0, I), candidate 0 of
    each window at eps = 0 (the most likely code). Returns generate()'s dict with B C rows,
    window b's candidates in rows b C ... b C + C - 1."""
    xs = [np.repeat(np.asarray(a), candidates, axis=0) for a in xs]
    with nn.no_grad():
        mu, log_var = model.encode(xs)
    mu, log_var = nn.to_cpu(mu), nn.to_cpu(log_var)
    eps = rng.standard_normal(mu.shape).astype(mu.dtype)
    eps[::candidates] = 0.0
    z = mu + np.exp(0.5 * log_var) * eps
    if start is not None:
        start = np.repeat(np.asarray(start), candidates, axis=0)
    return model.generate(xs, n_steps, z=z, threshold=threshold, temperature=temperature,
                          rng=rng, start=start)


def judge_scores(judge, xs, cand: dict) -> np.ndarray:
    """The judge's logits of "real" for candidate drums (B, T, K arrays) over inputs xs."""
    hvo = np.concatenate([cand["H"], cand["V"], cand["O"]], axis=-1)
    return judge.score(judge_features(hvo, onset_density(xs), judge.cfg.features))


def _rank(model, x, cand: dict, how: str, template, judge=None) -> np.ndarray:
    """Scores of candidate drums (lower is better)."""
    H = cand["H"]
    if how == "template":
        T = H.shape[1] - H.shape[1] % groove.STEPS_PER_BAR or H.shape[1]
        return np.atleast_1d(groove.template_distance(H[:, :T], template))
    if how == "likelihood":
        hvo = np.concatenate([cand["H"], cand["V"], cand["O"]], axis=-1)
        S = model.block_steps
        n = -(-hvo.shape[1] // S) * S
        return -model.log_likelihood([_pad_steps(a, n) for a in x], _pad_steps(hvo, n))
    if how == "judge":
        return -judge_scores(judge, x, cand)
    raise ValueError(f"--rank must be 'judge', 'template' or 'likelihood', got {how!r}")


def accompany_song(model, ck, song_path: str, out_path: str, threshold: float | None = None,
                   temperature: float = 0.0, candidates: int = 1, rank: str = "auto",
                   mode: str = "windows", keep_drums: bool = False, seed: int = 0,
                   judge=None, wav: bool = True, png: bool = True, log=print) -> dict:
    """Generate drums for a song's 4/4 sections and write OUT.mid, with OUT.png (the drums
    under the other parts) and OUT.wav when a renderer is installed (see the module
    docstring). ``rank`` 'auto': by the judge when there is one, else by the template."""
    if ck.config.get("task") != "accompaniment":
        raise nn.CheckpointError(f"the checkpoint is a {ck.config.get('task')} model; accompany "
                                 "needs one trained by `train`")
    if rank == "auto":
        rank = "judge" if judge is not None else "template"
    if rank == "judge" and judge is None:
        raise UsageError("--rank judge needs the run's judge.npz beside the checkpoint or --judge")
    song = midi.read_midi(song_path)
    fams = dd.check_song(song, require="any", min_bars=1)
    missing = [f for f, notes in fams.items() if not notes]
    if missing:
        log(f"note: the song has no {' or '.join(missing)} part: the model hears silence there")
    roll_mode = ck.config.get("roll_mode", "onset")
    if threshold is None:
        threshold = (ck.config.get("thresholds") or {}).get("free", 0.5)
    template = ck.arrays.get("template")
    if template is None:
        template = groove.beat_template(groove.rock_beat(16)[0])
    n_total = int(np.ceil(song.length * groove.STEPS_PER_BEAT))
    rolls = dd.roll_input(dd.song_rolls(fams, n_total), roll_mode,
                          dd.song_onset_velocity(fams, n_total))          # (S, 3, 88)
    sections = [(s, e - (e - s) % groove.STEPS_PER_BAR) for s, e in dd.four_four_sections(song)]
    sections = [(s, e) for s, e in sections if e > s]
    rng = np.random.default_rng(seed)
    T = int(ck.config["hp"]["bars"]) * groove.STEPS_PER_BAR
    notes, report = [], {"sections": [], "candidates": candidates, "rank": rank, "mode": mode,
                         "threshold": threshold, "temperature": temperature}
    for s, e in sections:
        chunks = [(a, min(a + T, e)) for a in range(s, e, T)] if mode == "windows" else [(s, e)]
        prev = None
        for a, b in chunks:
            n = b - a
            pad = max(n, T) if mode == "windows" else n
            xs = [_pad_steps(rolls[a:b, i][None], pad) for i in range(rolls.shape[1])]
            cand = draw_candidates(model, xs, pad, candidates, threshold, rng, temperature,
                                   start=None if prev is None else prev[None])
            cand = {k: v[:, :n] for k, v in cand.items()}
            xs_c = [np.repeat(x[:, :n], candidates, axis=0) for x in xs]
            scores = _rank(model, xs_c, cand, rank, template, judge)
            best = int(np.argmin(scores))
            H, V, O = cand["H"][best], cand["V"][best], cand["O"][best]
            prev = np.concatenate([H[-1], V[-1], O[-1]])
            notes += groove.hvo_to_notes(H, V, O, start_beat=a / groove.STEPS_PER_BEAT)
            report["sections"].append({"start_bar": a // groove.STEPS_PER_BAR,
                                       "bars": n // groove.STEPS_PER_BAR, "hits": int(H.sum()),
                                       "chosen": best, "scores": [float(x) for x in scores]})
    write_with_drums(song_path, out_path, notes, keep_drums)
    bars = sum(x["bars"] for x in report["sections"])
    report.update(out=out_path, bars=bars, drum_notes=len(notes))
    log(f"wrote {out_path}: {len(notes)} drum notes over {bars} bars of 4/4 "
        f"({len(report['sections'])} window(s); {candidates} candidate(s) each, ranked by {rank})")
    stem = os.path.splitext(out_path)[0]
    if png:
        report["png"] = plot_accompaniment(out_path, stem + ".png", sections,
                                           title=f"{os.path.basename(song_path)}: drums by "
                                                 "nnscratch under the song's parts")
        log(f"wrote {report['png']}")
    if wav:
        report["wav"] = render.render_wav(out_path, stem + ".wav")
        log(f"wrote {report['wav']}" if report["wav"] else render.render_hint()
            or "the WAV rendering failed")
    return report


def plot_accompaniment(midi_path: str, png_path: str, sections=(), title: str = "") -> str:
    """A piano roll of the written file: the piano, guitar and bass notes above (pitch against
    beats, one colour per family), the new drums below (one row per class, darker = louder),
    bar lines, and the 4/4 sections the model played shaded."""
    import matplotlib  # slow to import; only this figure needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    song = midi.read_midi(midi_path)
    fams = dd.family_notes(song)
    length = max(song.length, 1.0)
    fig, (top, low) = plt.subplots(2, 1, figsize=(min(40.0, 4.0 + length / 10), 6.5),
                                   sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    for (name, ns), colour in zip(fams.items(), ("C0", "C2", "C3")):
        if ns:
            top.barh([x.pitch for x in ns], [x.end - x.start for x in ns],
                     left=[x.start for x in ns], height=0.9, color=colour, label=name,
                     linewidth=0)
    top.legend(loc="upper right", fontsize=7)
    top.set_ylabel("MIDI pitch")
    top.set_title(title, fontsize=9)
    drums = [x for x in song.drums() if groove.drum_class(x.pitch) >= 0]
    if drums:
        low.scatter([x.start for x in drums], [groove.drum_class(x.pitch) for x in drums],
                    c=[x.velocity for x in drums], cmap="Greys", vmin=0, vmax=127, marker="s",
                    s=6, linewidths=0)
    low.set_yticks(range(groove.N_CLASSES), groove.CLASS_NAMES, fontsize=7)
    low.set_ylim(-0.7, groove.N_CLASSES - 0.3)
    low.set_xlabel("beats (quarter notes); shaded: the 4/4 sections the model played")
    for ax in (top, low):
        for s, e in sections:
            ax.axvspan(s / groove.STEPS_PER_BEAT, e / groove.STEPS_PER_BEAT, color="0.95",
                       zorder=0)
        for s, e in sections:
            for bar in range(s, e + 1, groove.STEPS_PER_BAR):
                ax.axvline(bar / groove.STEPS_PER_BEAT, color="0.85", lw=0.4, zorder=0)
    low.set_xlim(0, length)
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return png_path


def write_with_drums(src: str, out: str, notes, keep_drums: bool = False) -> str:
    """Copy ``src``'s tracks (dropping its channel-10 notes unless ``keep_drums``) and append a
    drum track of ``notes`` on channel 10 (mido channel 9), at the file's own resolution."""
    import mido  # imported where it is used, as apps.music.midi does

    mf = mido.MidiFile(src)
    tpb = mf.ticks_per_beat
    out_mf = mido.MidiFile(type=1, ticks_per_beat=tpb)
    end_tick = 0
    for tr in mf.tracks:
        new, carry, now = mido.MidiTrack(), 0, 0
        for msg in tr:
            now += msg.time
            if (not keep_drums and msg.type in ("note_on", "note_off")
                    and msg.channel == midi.DRUM_CHANNEL):
                carry += msg.time
                continue
            new.append(msg.copy(time=msg.time + carry))
            carry = 0
        end_tick = max(end_tick, now)
        out_mf.tracks.append(new)
    evs = []
    for n in notes:
        on = int(round(n.start * tpb))
        off = max(int(round(n.end * tpb)), on + 1)
        evs.append((on, 1, mido.Message("note_on", channel=midi.DRUM_CHANNEL, note=n.pitch,
                                        velocity=n.velocity)))
        evs.append((off, 0, mido.Message("note_off", channel=midi.DRUM_CHANNEL, note=n.pitch,
                                         velocity=0)))
    evs.sort(key=lambda e: (e[0], e[1]))
    drum = mido.MidiTrack([mido.MetaMessage("track_name", name="drums (nnscratch)", time=0)])
    now = 0
    for t, _, msg in evs:
        drum.append(msg.copy(time=t - now))
        now = t
    drum.append(mido.MetaMessage("end_of_track", time=max(end_tick - now, 0)))
    out_mf.tracks.append(drum)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    out_mf.save(out)
    return out


def cmd_accompany(args, log=print) -> dict:
    """``accompany``: drums for SONG.mid from a ``train`` checkpoint, written to --out, with a
    piano-roll PNG and a WAV (when fluidsynth or timidity is installed) beside it."""
    model, ck = load_model(args.checkpoint)
    path = getattr(args, "judge", None) or judge_path(args.checkpoint)
    judge = load_judge(path)[0] if (getattr(args, "judge", None) or os.path.isfile(path)) \
        else None
    return accompany_song(model, ck, args.song, args.out, args.threshold, args.temperature,
                          args.candidates, args.rank, args.mode, args.keep_drums, args.seed,
                          judge=judge, wav=not getattr(args, "no_wav", False), log=log)
