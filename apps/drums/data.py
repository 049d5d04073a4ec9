"""Drum-accompaniment data: Lakh (Beatles) multi-track songs and Groove MIDI performances.

**Lakh** (``../shared/data/lakh-beatles-midi``, the 197 files of its manifest with drums, piano,
guitar and bass; env ``NNSCRATCH_DATA_LAKH`` or ``--data`` overrides the folder):

* the 4/4 sections of each song, from its time-signature map (each signature change starts a
  bar, as ``midi.MidiSong.bar_position`` assumes; a pickup bar is not detected);
* sixteenth-note steps counted in beats, so the grid follows the tempo map (groove.py);
* inputs: one pitch many-hot piano roll per family, all of a family's parts merged:
  piano = GM programs 0-7, guitar 24-31, bass 32-39; 88 keys (21-108) each. The cache keeps
  2 at an onset and 1 while a note is held, so ``mode='onset'`` (the default: the seed keeps
  no note ends) and ``mode='hold'`` read the same cache;
* targets: the drum channel as H/V/O (groove.py, Magenta's 9 classes);
* windows of 8 bars (128 steps) starting on a bar of a 4/4 section and lying inside it, every
  ``hop_bars`` bars in the training split (2: overlapping) and every 8 in validation and test
  (disjoint, so no step is counted twice); a window needs ``min_hits`` drum hits and
  ``min_notes`` onsets in the three families (drums tacet or a drum solo is not accompaniment);
* the split is by song title, never by window: every version (``.v0``, ``.v1``...) of a song
  lands in the same split;
* files mido cannot read (5 of the 197: stray status bytes) are skipped and counted.

**Groove MIDI** (``../shared/data/groove-midi``, env ``NNSCRATCH_DATA_GROOVE``): the 4/4
performances, H/V/O over each file, windows of ``bars`` bars every ``hop_bars`` bars in the
training split (disjoint windows in validation and test), the dataset's own
train/validation/test split (info.csv). For GrooVAE's humanisation task.

Both are cached as ``.npz`` under ``$NNSCRATCH_CACHE/drums`` (default
``~/.cache/nnscratch/drums``), keyed by the settings and the files' sizes, never in the repo.

    data = load_lakh()                         # DrumData; data.stats says what was kept
    x, hvo = data.batch("train", np.arange(32))   # (32, 3, 128, 88), (32, 128, 27)
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import re
from dataclasses import dataclass, field

import numpy as np

from apps.common.errors import InputError
from apps.music import data_paths, midi

from . import groove

PIPELINE_VERSION = 3
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_LAKH = os.path.join(ROOT, "..", "shared", "data", "lakh-beatles-midi")
DEFAULT_GROOVE = os.path.join(ROOT, "..", "shared", "data", "groove-midi")

#: the input families and their General MIDI programs
FAMILIES = {"piano": range(0, 8), "guitar": range(24, 32), "bass": range(32, 40)}
FAMILY_NAMES = tuple(FAMILIES)
LOW_KEY, HIGH_KEY = midi.PIANO_KEYS            # 21..108: 88 roll columns per family
N_KEYS = HIGH_KEY - LOW_KEY + 1
SPLITS = ("train", "val", "test")
APP = "drum_accompaniment"                     # the tag of its checkpoints and summaries


class DrumInputError(InputError):
    """A song the drum model cannot accompany or learn from (meter, instruments)."""


# ----------------------------------------------------------------------------------------------
# Paths
# ----------------------------------------------------------------------------------------------
def lakh_dir(override: str | None = None) -> str:
    return os.path.normpath(override or os.environ.get("NNSCRATCH_DATA_LAKH") or DEFAULT_LAKH)


def groove_dir(override: str | None = None) -> str:
    return os.path.normpath(override or os.environ.get("NNSCRATCH_DATA_GROOVE") or DEFAULT_GROOVE)


def cache_dir(override: str | None = None) -> str:
    """override, else $NNSCRATCH_CACHE/drums, else ~/.cache/nnscratch/drums."""
    return data_paths.cache_dir("drums", override)


def _need_dir(path: str, what: str, env: str) -> None:
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{what} folder not found: {path} (pass --data or set {env})")


# ----------------------------------------------------------------------------------------------
# One song
# ----------------------------------------------------------------------------------------------
def family_of(program: int) -> str | None:
    for name, progs in FAMILIES.items():
        if program in progs:
            return name
    return None


def four_four_sections(song: midi.MidiSong) -> list:
    """[(start_step, end_step)] of the song's 4/4 stretches, each starting on a bar line.

    Consecutive 4/4 signatures whose distance is a whole number of bars are merged.
    """
    out = []
    sigs = song.time_signatures
    for k, (beat, num, den) in enumerate(sigs):
        end = sigs[k + 1][0] if k + 1 < len(sigs) else song.length
        if (num, den) != (4, 4) or end <= beat:
            continue
        s = int(round(beat * groove.STEPS_PER_BEAT))
        e = int(np.floor(end * groove.STEPS_PER_BEAT + 1e-6))
        if out and out[-1][1] == s and (s - out[-1][0]) % groove.STEPS_PER_BAR == 0:
            out[-1] = (out[-1][0], e)
        elif e > s:
            out.append((s, e))
    return out


def meter_summary(song: midi.MidiSong) -> str:
    return ", ".join(f"{n}/{d} at beat {b:g}" for b, n, d in song.time_signatures)


def family_notes(song: midi.MidiSong) -> dict:
    """{'piano': [...], 'guitar': [...], 'bass': [...]}: pitched notes by input family."""
    out = {name: [] for name in FAMILIES}
    for n in song.pitched():
        fam = family_of(n.program)
        if fam is not None:
            out[fam].append(n)
    return out


def check_song(song: midi.MidiSong, require: str = "any", min_bars: int = 1) -> dict:
    """Raise DrumInputError unless the song can be accompanied; return its family notes.

    require 'any': at least one of piano/guitar/bass plays (a missing family is silence);
    'all': all three play (the training files' condition). The song needs a 4/4 section of at
    least ``min_bars`` bars.
    """
    fams = family_notes(song)
    present = [f for f, notes in fams.items() if notes]
    if (require == "all" and len(present) < 3) or not present:
        others = sorted({"drums" if n.is_drum else midi.GM_FAMILIES[n.program // 8]
                         for n in song.notes})
        missing = [f for f in FAMILIES if f not in present]
        needs = "piano, guitar and bass" if require == "all" else "piano, guitar or bass"
        raise DrumInputError(
            f"{song.path}: the drum model needs {needs} "
            f"parts (General MIDI programs 0-7, 24-31, 32-39); missing: {', '.join(missing)}; "
            f"the file has: {', '.join(others) or 'no notes at all'}")
    sections = four_four_sections(song)
    longest = max((e - s for s, e in sections), default=0) // groove.STEPS_PER_BAR
    if longest < min_bars:
        raise DrumInputError(
            f"{song.path}: the drum model plays in 4/4 only, and this song has "
            f"{'no 4/4 section' if not sections else f'no 4/4 section of {min_bars} bars or more'} "
            f"(time signatures: {meter_summary(song)})")
    return fams


def song_rolls(fams: dict, n_steps: int) -> np.ndarray:
    """(n_steps, 3, 88) uint8: 2 at an onset, 1 while held, per family (FAMILY_NAMES order)."""
    out = np.zeros((n_steps, len(FAMILIES), N_KEYS), np.uint8)
    for i, name in enumerate(FAMILY_NAMES):
        notes = fams[name]
        if not notes:
            continue
        hold = midi.piano_roll(notes, groove.STEPS_PER_BEAT, n_steps, midi.PIANO_KEYS, "hold")
        onset = midi.piano_roll(notes, groove.STEPS_PER_BEAT, n_steps, midi.PIANO_KEYS, "onset")
        out[:, i] = np.maximum(hold, 2 * onset).astype(np.uint8)
    return out


def song_onset_velocity(fams: dict, n_steps: int) -> np.ndarray:
    """(n_steps, 3) uint8: the mean MIDI velocity of each family's notes starting at each step
    (0 where none starts), the loudness that ``roll_input(mode='velocity')`` gives the onsets."""
    out = np.zeros((n_steps, len(FAMILIES)), np.uint8)
    for i, name in enumerate(FAMILY_NAMES):
        if not fams[name]:
            continue
        v = midi.piano_roll(fams[name], groove.STEPS_PER_BEAT, n_steps, midi.PIANO_KEYS, "onset",
                            velocity=True)
        n = (v > 0).sum(axis=1)
        out[:, i] = np.rint(127.0 * v.sum(axis=1) / np.maximum(n, 1)).astype(np.uint8)
    return out


ROLL_MODES = ("onset", "hold", "velocity")


def roll_input(rolls, mode: str = "onset", onset_vel=None) -> np.ndarray:
    """Cached rolls (..., 3, 88) in {0, 1, 2} -> float32 model input: 'onset' 1 where a note
    starts, 'hold' 1 while one sounds, 'velocity' the onsets at their family's mean velocity
    at that step / 127 (``onset_vel`` (..., 3), song_onset_velocity's)."""
    if mode == "onset":
        return (rolls == 2).astype(np.float32)
    if mode == "hold":
        return (rolls > 0).astype(np.float32)
    if mode == "velocity":
        if onset_vel is None:
            raise ValueError("roll mode 'velocity' needs the onsets' velocities")
        return (rolls == 2) * (np.asarray(onset_vel, np.float32)[..., None] / 127.0)
    raise ValueError(f"roll mode must be one of {ROLL_MODES}, got {mode!r}")


def window_starts(sections, n_steps: int, bars: int, hop_bars: int) -> list:
    """Starts (steps) of the windows of ``bars`` bars, every ``hop_bars`` bars, inside sections."""
    T, hop = bars * groove.STEPS_PER_BAR, hop_bars * groove.STEPS_PER_BAR
    out = []
    for s, e in sections:
        e = min(e, n_steps)
        out.extend(range(s, e - T + 1, hop))
    return out


# ----------------------------------------------------------------------------------------------
# The dataset
# ----------------------------------------------------------------------------------------------
@dataclass
class DrumData:
    """Songs concatenated along one step axis, and window starts into it, per split.

    rolls (S, 3, 88) uint8 (None for drums-only data); onset_vel (S, 3) uint8, the families'
    onset velocities (song_onset_velocity; None for drums-only data); hits, vel (S, 9) uint8
    (vel = MIDI velocity); off (S, 9) float32 (steps); songs: one dict per song (name, path,
    split, start, steps, bpm); windows[split]: (N,) starts; window_song[split]: (N,) song indices.
    """

    hits: np.ndarray
    vel: np.ndarray
    off: np.ndarray
    rolls: np.ndarray | None
    songs: list
    windows: dict
    window_song: dict
    steps: int
    stats: dict = field(default_factory=dict)
    onset_vel: np.ndarray | None = None

    def size(self, split: str) -> int:
        return len(self.windows[split])

    def hvo(self, split: str, idx) -> np.ndarray:
        """(B, T, 27) float32 targets [H | V | O] of windows ``idx`` of ``split``."""
        rows = self.windows[split][np.asarray(idx)][:, None] + np.arange(self.steps)
        return np.concatenate([self.hits[rows].astype(np.float32),
                               self.vel[rows].astype(np.float32) / 127.0,
                               self.off[rows]], axis=-1)

    def inputs(self, split: str, idx, mode: str = "onset") -> np.ndarray | None:
        """(B, 3, T, 88) float32 many-hot rolls of windows ``idx`` (None for drums-only data)."""
        if self.rolls is None:
            return None
        rows = self.windows[split][np.asarray(idx)][:, None] + np.arange(self.steps)
        vel = None if self.onset_vel is None else self.onset_vel[rows]
        return roll_input(self.rolls[rows], mode, vel).transpose(0, 2, 1, 3)

    def batch(self, split: str, idx, mode: str = "onset") -> tuple:
        return self.inputs(split, idx, mode), self.hvo(split, idx)

    def summary(self) -> dict:
        return {**self.stats, "windows": {s: int(len(self.windows[s])) for s in SPLITS},
                "songs_per_split": {s: sum(x["split"] == s for x in self.songs) for s in SPLITS}}


def _cache_key(kind: str, settings: dict, files: list) -> str:
    h = hashlib.sha1(json.dumps([PIPELINE_VERSION, kind, settings], sort_keys=True).encode())
    for f in files:
        try:
            h.update(f"{f}:{os.path.getsize(f)}".encode())
        except OSError:
            h.update(f"{f}:missing".encode())
    return h.hexdigest()[:16]


def _save(path: str, data: DrumData) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    arrays = {"hits": data.hits, "vel": data.vel, "off": data.off}
    if data.rolls is not None:
        arrays["rolls"] = data.rolls
    if data.onset_vel is not None:
        arrays["onset_vel"] = data.onset_vel
    for s in SPLITS:
        arrays[f"windows_{s}"] = data.windows[s]
        arrays[f"window_song_{s}"] = data.window_song[s]
    meta = {"songs": data.songs, "steps": data.steps, "stats": data.stats}
    tmp = path + ".tmp.npz"
    np.savez_compressed(tmp, meta=np.array(json.dumps(meta)), **arrays)
    os.replace(tmp, path)


def _load(path: str) -> DrumData:
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        return DrumData(
            hits=z["hits"], vel=z["vel"], off=z["off"],
            rolls=z["rolls"] if "rolls" in z.files else None, songs=meta["songs"],
            windows={s: z[f"windows_{s}"] for s in SPLITS},
            window_song={s: z[f"window_song_{s}"] for s in SPLITS},
            steps=int(meta["steps"]), stats=meta["stats"],
            onset_vel=z["onset_vel"] if "onset_vel" in z.files else None)


def _cached(kind: str, settings: dict, files: list, cache: str | None, use_cache: bool, build,
            log):
    path = os.path.join(cache_dir(cache), f"{kind}-{_cache_key(kind, settings, files)}.npz")
    if use_cache and os.path.isfile(path):
        try:
            data = _load(path)
            log(f"{kind}: loaded the cached dataset {path}")
            return data
        except (OSError, ValueError, KeyError):
            log(f"{kind}: the cache {path} is damaged; rebuilding it")
    data = build()
    if use_cache:
        _save(path, data)
        log(f"{kind}: cached the dataset in {path}")
    return data


def song_title(name: str) -> str:
    """'05_-_Help' or '01_-_Help.v2' -> 'help': the key of the by-song split."""
    name = re.sub(r"\.v\d+$", "", os.path.splitext(os.path.basename(name))[0])
    return re.sub(r"^\d+_-_", "", name).lower()


def split_songs(titles, val_frac: float = 0.1, test_frac: float = 0.1, seed: int = 0) -> dict:
    """{title: split}: a seeded shuffle of the distinct titles, cut into test, val, train."""
    uniq = sorted(set(titles))
    order = np.random.default_rng(seed).permutation(len(uniq))
    n_test = max(1, int(round(len(uniq) * test_frac)))
    n_val = max(1, int(round(len(uniq) * val_frac)))
    out = {}
    for rank, i in enumerate(order):
        out[uniq[i]] = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
    return out


def _assemble(per_song: list, songs: list, steps: int, with_rolls: bool, stats: dict) -> DrumData:
    """Concatenate per-song arrays; turn each song's local window starts into global ones."""
    windows = {s: [] for s in SPLITS}
    wsong = {s: [] for s in SPLITS}
    pos = 0
    for k, (arrs, starts) in enumerate(per_song):
        songs[k]["start"] = pos
        songs[k]["steps"] = int(len(arrs["hits"]))
        windows[songs[k]["split"]].extend(pos + s for s in starts)
        wsong[songs[k]["split"]].extend([k] * len(starts))
        pos += len(arrs["hits"])

    def cat(key, shape, dtype):
        parts = [a[key] for a, _ in per_song]
        return np.concatenate(parts) if parts else np.zeros(shape, dtype)

    return DrumData(
        hits=cat("hits", (0, 9), np.uint8), vel=cat("vel", (0, 9), np.uint8),
        off=cat("off", (0, 9), np.float32),
        rolls=cat("rolls", (0, 3, N_KEYS), np.uint8) if with_rolls else None, songs=songs,
        windows={s: np.asarray(windows[s], np.int64) for s in SPLITS},
        window_song={s: np.asarray(wsong[s], np.int64) for s in SPLITS}, steps=steps, stats=stats,
        onset_vel=cat("onset_vel", (0, 3), np.uint8) if with_rolls else None)


def _hvo_arrays(notes, n_steps: int) -> tuple:
    H, V, O, st = groove.notes_to_hvo(notes, n_steps)
    return {"hits": H.astype(np.uint8), "vel": np.rint(V * 127).astype(np.uint8),
            "off": O.astype(np.float32)}, st


def lakh_files(data_dir: str, limit: int | None = None) -> list:
    """Manifest rows of the files with drums, piano, guitar and bass (has_all_four)."""
    man = os.path.join(data_dir, "manifest.csv")
    if not os.path.isfile(man):
        raise FileNotFoundError(f"{man} not found: is {data_dir} the lakh-beatles-midi folder?")
    with open(man, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("has_all_four") == "1"]
    return rows[:limit] if limit else rows


def build_lakh(data_dir: str | None = None, bars: int = 8, hop_bars: int = 2, min_hits: int = 16,
               min_notes: int = 8, val_frac: float = 0.1, test_frac: float = 0.1,
               split_seed: int = 0, limit: int | None = None, progress: bool = False,
               log=print) -> DrumData:
    """Read the Lakh files and build the dataset (no cache; ``load_lakh`` caches it)."""
    data_dir = lakh_dir(data_dir)
    _need_dir(data_dir, "Lakh (Beatles) MIDI", "NNSCRATCH_DATA_LAKH")
    rows = lakh_files(data_dir, limit)
    split_of = split_songs([song_title(r["song"]) for r in rows], val_frac, test_frac, split_seed)
    T = bars * groove.STEPS_PER_BAR
    stats = {"files": len(rows), "damaged": [], "no_four_four": [], "missing_family": [],
             "kept_files": 0, "drum_notes": 0, "hits": 0, "merged_notes": 0, "unmapped_notes": 0,
             "windows_dropped_few_hits": 0, "windows_dropped_few_notes": 0}
    per_song, songs = [], []
    it = rows
    if progress:
        from tqdm import tqdm  # noqa: PLC0415

        it = tqdm(rows, desc="lakh files", unit="file")
    for r in it:
        path = os.path.join(data_dir, r["path"])
        try:
            song = midi.read_midi(path)
        except midi.MidiError as exc:
            stats["damaged"].append(f"{r['path']}: {str(exc).split(': ', 1)[-1][:120]}")
            continue
        try:
            fams = check_song(song, require="all", min_bars=bars)
        except DrumInputError as exc:
            key = "no_four_four" if "4/4" in str(exc) else "missing_family"
            stats[key].append(r["path"])
            continue
        n = int(np.ceil(song.length * groove.STEPS_PER_BEAT))
        arrs, st = _hvo_arrays(song.drums(), n)
        arrs["rolls"] = song_rolls(fams, n)
        arrs["onset_vel"] = song_onset_velocity(fams, n)
        stats["drum_notes"] += st.notes
        stats["hits"] += st.hits
        stats["merged_notes"] += st.merged
        stats["unmapped_notes"] += st.unmapped
        split = split_of[song_title(r["song"])]
        hop = hop_bars if split == "train" else bars
        starts = []
        for s in window_starts(four_four_sections(song), n, bars, hop):
            if arrs["hits"][s:s + T].sum() < min_hits:
                stats["windows_dropped_few_hits"] += 1
            elif (arrs["rolls"][s:s + T] == 2).sum() < min_notes:
                stats["windows_dropped_few_notes"] += 1
            else:
                starts.append(s)
        stats["kept_files"] += 1
        songs.append({"name": r["path"], "title": song_title(r["song"]), "split": split,
                      "bpm": round(float(song.bpm), 3)})
        per_song.append((arrs, starts))
    stats["settings"] = {"bars": bars, "hop_bars": hop_bars, "min_hits": min_hits,
                         "min_notes": min_notes, "val_frac": val_frac, "test_frac": test_frac,
                         "split_seed": split_seed}
    data = _assemble(per_song, songs, T, True, stats)
    log(f"lakh: {stats['kept_files']} of {len(rows)} files kept ({len(stats['damaged'])} damaged, "
        f"{len(stats['no_four_four'])} without 8 bars of 4/4); windows "
        + ", ".join(f"{s} {data.size(s)}" for s in SPLITS)
        + f"; {stats['unmapped_notes']} drum notes outside the 9 classes")
    return data


def load_lakh(data_dir: str | None = None, cache: str | None = None, use_cache: bool = True,
              progress: bool = False, log=print, **settings) -> DrumData:
    """The Lakh dataset, from the cache when it is there (settings: see ``build_lakh``)."""
    d = lakh_dir(data_dir)
    _need_dir(d, "Lakh (Beatles) MIDI", "NNSCRATCH_DATA_LAKH")
    files = [os.path.join(d, r["path"]) for r in lakh_files(d, settings.get("limit"))]
    return _cached("lakh", settings, files, cache, use_cache,
                   lambda: build_lakh(d, progress=progress, log=log, **settings), log)


def groove_rows(data_dir: str, limit: int | None = None) -> list:
    info = os.path.join(data_dir, "info.csv")
    if not os.path.isfile(info):
        raise FileNotFoundError(f"{info} not found: is {data_dir} the groove-midi folder?")
    with open(info, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["time_signature"] == "4-4"]
    if limit:   # a small slice of each split, for tests and quick runs
        by = {s: [r for r in rows if r["split"] == s] for s in ("train", "validation", "test")}
        rows = [r for s in by for r in by[s][:limit]]
    return rows


def build_groove(data_dir: str | None = None, bars: int = 4, hop_bars: int = 2, min_hits: int = 4,
                 limit: int | None = None, progress: bool = False, log=print) -> DrumData:
    """Groove MIDI's 4/4 performances as H/V/O windows (drums only: ``rolls`` is None)."""
    data_dir = groove_dir(data_dir)
    _need_dir(data_dir, "Groove MIDI", "NNSCRATCH_DATA_GROOVE")
    rows = groove_rows(data_dir, limit)
    T = bars * groove.STEPS_PER_BAR
    stats = {"files": len(rows), "damaged": [], "too_short": 0, "hits": 0, "merged_notes": 0,
             "unmapped_notes": 0}
    per_song, songs = [], []
    it = rows
    if progress:
        from tqdm import tqdm  # noqa: PLC0415

        it = tqdm(rows, desc="groove files", unit="file")
    for r in it:
        path = os.path.join(data_dir, r["midi_filename"])
        try:
            song = midi.read_midi(path)
        except midi.MidiError as exc:
            stats["damaged"].append(str(exc)[:160])
            continue
        n = int(np.ceil(song.length * groove.STEPS_PER_BEAT))
        arrs, st = _hvo_arrays(song.drums(), n)
        stats["hits"] += st.hits
        stats["merged_notes"] += st.merged
        stats["unmapped_notes"] += st.unmapped
        split = {"validation": "val"}.get(r["split"], r["split"])
        hop = hop_bars if split == "train" else bars
        starts = [s for s in window_starts([(0, n)], n, bars, hop)
                  if arrs["hits"][s:s + T].sum() >= min_hits]
        if not starts:
            stats["too_short"] += 1
            continue
        songs.append({"name": r["midi_filename"], "title": r["id"], "split": split,
                      "bpm": float(r["bpm"]), "style": r["style"], "beat_type": r["beat_type"]})
        per_song.append((arrs, starts))
    stats["settings"] = {"bars": bars, "hop_bars": hop_bars, "min_hits": min_hits}
    data = _assemble(per_song, songs, T, False, stats)
    log(f"groove: {len(songs)} of {len(rows)} 4/4 performances give {bars}-bar windows "
        f"({stats['too_short']} shorter); windows "
        + ", ".join(f"{s} {data.size(s)}" for s in SPLITS))
    return data


def load_groove(data_dir: str | None = None, cache: str | None = None, use_cache: bool = True,
                progress: bool = False, log=print, **settings) -> DrumData:
    d = groove_dir(data_dir)
    _need_dir(d, "Groove MIDI", "NNSCRATCH_DATA_GROOVE")
    files = [os.path.join(d, r["midi_filename"]) for r in groove_rows(d, settings.get("limit"))]
    return _cached("groove", settings, files, cache, use_cache,
                   lambda: build_groove(d, progress=progress, log=log, **settings), log)


__all__ = [
    "APP", "FAMILIES", "FAMILY_NAMES", "N_KEYS", "SPLITS", "DrumInputError", "DrumData", "lakh_dir",
    "groove_dir", "cache_dir", "family_of", "four_four_sections", "family_notes", "check_song",
    "song_rolls", "song_onset_velocity", "ROLL_MODES", "roll_input", "window_starts",
    "song_title", "split_songs", "build_lakh",
    "load_lakh", "build_groove", "load_groove", "lakh_files", "groove_rows",
]
