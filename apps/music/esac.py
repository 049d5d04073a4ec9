"""The EsAC (Essen folk-song collection) pipeline: ABC -> music21 -> filtered, transposed,
time-series tokens -> MIDI and back.

Steps, as on the 2024 slides (seed 002):

1. split each ``.abc`` file of ``../shared/data/essen-folksong-abc`` into tunes and fix its
   quirks (``K: H`` is German for B; DOS code-page-437 umlauts stored as C1 control characters);
2. parse each tune with music21; a tune is **dropped** if any note or rest has a duration outside
   ``ACCEPTED_DURATIONS`` = [0.25, 0.5, 0.75, 1, 1.5, 2, 3, 4] quarter lengths (triplets, grace
   notes, 1/32 notes, very long notes);
3. **transpose** to C major / A minor: when the ``K:`` field names a mode (``K:Am``,
   ``K:Ddor``), the key comes from it; Essen's ``K:`` gives only a letter, so the key comes from
   music21's analysis (Aarden-Essen key profiles). The shift is the smallest one (-6..+5
   semitones) taking the tonic to C (major) or A (minor); church modes go by their signature;
4. **encode** at sixteenth-note steps (``STEP`` = 0.25 quarter lengths): the MIDI pitch at a
   note's onset, ``_`` while it holds, ``r`` at the start of a rest (then ``_``). Tied notes are
   one held note and consecutive rests one rest, so the encoding is canonical: a melody has
   exactly one token string, which is what makes ABC -> tokens -> MIDI -> tokens exact.

Units: ``ql`` = quarter lengths (music21's unit, = MIDI beats); one token = one sixteenth.
Parsed songs are cached as JSON (one file per source file and settings) under
``$NNSCRATCH_CACHE/esac`` (default ``~/.cache/nnscratch/esac``), never in the repository.

    songs, stats = load_songs("han")                     # list[Song], drop counts
    song.tokens                                          # ['62', '_', '_', '_', '57', '_', ...]
    tokens_to_midi("song.mid", song.tokens)              # and midi_to_tokens("song.mid")
    tokens, info = abc_to_tokens(abc_text)               # a prime written in ABC
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from dataclasses import asdict, dataclass, field

from apps.common.errors import InputError

from . import data_paths, midi
from .abc_eval import OversizedAbcError, music21_time_limit, refuse_oversized
from .data_paths import resolve_data_dir

ACCEPTED_DURATIONS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0)
STEP = 0.25                 # quarter lengths per token: a sixteenth note
HOLD, REST = "_", "r"
PIPELINE_VERSION = 1        # bump when the cached content changes

GERMAN_FILES = (
    "altdeu10", "altdeu20", "ballad10", "ballad20", "ballad30", "ballad40", "ballad50", "ballad60",
    "ballad70", "ballad80", "boehme10", "boehme20", "dva0", "erk5", "erk10", "erk20", "erk30",
    "fink0", "kinder0", "zuccal0",
)
SUBSETS = {
    "han": ("han1", "han2"),                 # Chinese Han folk songs, 1,224 tunes
    "kinder": ("kinder0",),                  # German children's songs, 213 tunes
    "german": GERMAN_FILES,                  # every German (deutschl) file, 5,979 tunes
}
SUBSETS["all"] = SUBSETS["han"] + GERMAN_FILES

_MAJOR_TARGET, _MINOR_TARGET = 0, 9    # pitch classes of C and A


class EsacError(InputError):
    """A tune, token string or file the pipeline cannot handle (the message says why)."""


class AbcParseError(EsacError):
    """ABC text that music21 cannot turn into a melody."""


# ----------------------------------------------------------------------------------------------
# Paths
# ----------------------------------------------------------------------------------------------
def essen_dir(override: str | None = None) -> str:
    return resolve_data_dir("essen-folksong-abc", "NNSCRATCH_DATA_ESSEN", override)


def cache_dir(override: str | None = None) -> str:
    """The parsed-EsAC cache: override, else $NNSCRATCH_CACHE/esac, else ~/.cache/nnscratch/esac."""
    return data_paths.cache_dir("esac", override)


# ----------------------------------------------------------------------------------------------
# ABC text
# ----------------------------------------------------------------------------------------------
_C1 = re.compile("[\u0080-\u009f]")


def _fix_c1(text: str) -> str:
    """DOS code-page-437 umlauts stored as C1 control characters -> the letters they stand for."""
    return _C1.sub(lambda m: bytes([ord(m.group())]).decode("cp437"), text)


def read_abc_file(path: str) -> str:
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return _fix_c1(text)


def split_tunes(text: str) -> list:
    """The tunes of an ABC file: blocks starting with an ``X:`` line (text before the first is
    dropped)."""
    parts = re.split(r"(?m)^(?=X:)", text)
    return [p.strip() + "\n" for p in parts if p.startswith("X:")]


def header_field(tune: str, name: str) -> str | None:
    m = re.search(rf"(?m)^{name}:\s*(.*?)\s*$", tune)
    return m.group(1) if m else None


def clean_tune(tune: str) -> str:
    """Fix Essen quirks music21 rejects: ``K: H`` (German B natural) becomes ``K: B``."""
    return re.sub(r"(?m)^K:\s*H\s*$", "K: B", tune)


def _key_field_mode(k_field: str | None) -> str | None:
    """The mode a ``K:`` value states ('Am' -> 'minor', 'Ddor' -> 'dorian'), or None for 'G'."""
    if not k_field:
        return None
    m = re.match(r"\s*([A-Ga-gHh])([#b]?)\s*([A-Za-z]*)", k_field)
    if not m or k_field.strip().lower() in ("none", ""):
        return None
    mode = m.group(3).lower()
    if not mode:
        return None
    for prefix, name in (("maj", "major"), ("ion", "major"), ("min", "minor"), ("aeo", "minor"),
                         ("m", "minor"), ("dor", "dorian"), ("phr", "phrygian"), ("lyd", "lydian"),
                         ("mix", "mixolydian"), ("loc", "locrian")):
        if mode.startswith(prefix):
            return name
    return None


_ABC_MUSIC_CHARS = set("ABCDEFGabcdefgzZxy^_=,'0123456789/|:[]-()<>.~{}&*$#HLMOPSTuv \t\\")


def check_abc_music(text: str, what: str = "ABC text") -> None:
    """Reject characters that cannot appear in an ABC music line (outside header fields,
    "annotations", !decorations!, [K:inline fields] and % comments), e.g. the 'h' of 'hello'.

    music21 skips what it does not understand, so without this check plain prose "parses".
    """
    for lineno, line in enumerate(text.splitlines(), 1):
        if re.match(r"^\s*[A-Za-z]:", line) or not line.strip():
            continue
        music = re.sub(r'"[^"]*"|![^!]*!|\[[A-Za-z]:[^\]]*\]|%.*$', " ", line)
        for col, ch in enumerate(music, 1):
            if ch not in _ABC_MUSIC_CHARS:
                raise AbcParseError(
                    f"{what}: line {lineno}, column {col}: {ch!r} cannot appear in ABC music "
                    f"(notes are A-G/a-g, rests z; line: {line.strip()!r})")


def parse_abc(text: str, what: str = "ABC text"):
    """music21 Score of one tune; AbcParseError if music21 fails or finds no notes.

    A bare body without headers ("C C G G | A A G2 |") gets ``X:1 M:4/4 L:1/8 K:C`` added.
    """
    import music21  # noqa: PLC0415 - slow import, only when parsing

    if not text or not text.strip():
        raise AbcParseError(f"{what}: empty ABC text")
    if not re.search(r"(?m)^K:", text):
        text = "X:1\nM:4/4\nL:1/8\nK:C\n" + text.strip() + "\n"
    elif not re.search(r"(?m)^X:", text):
        text = "X:1\n" + text
    try:
        refuse_oversized(text)   # a bar or meter music21 would take minutes over
        with warnings.catch_warnings(), music21_time_limit("parsing it"):
            warnings.simplefilter("ignore")
            score = music21.converter.parse(text, format="abc")
    except OversizedAbcError as exc:
        raise AbcParseError(f"{what}: {exc}") from None
    except Exception as exc:  # music21 raises many types (ABCHandlerException, TypeError...)
        raise AbcParseError(f"{what}: music21 cannot parse it: {type(exc).__name__}: "
                            f"{exc}") from exc
    if not score.flatten().notes:
        raise AbcParseError(f"{what}: parsed, but it holds no notes (is it ABC?)")
    return score


# ----------------------------------------------------------------------------------------------
# Songs
# ----------------------------------------------------------------------------------------------
@dataclass
class Song:
    """One processed tune. ``events`` are (pitch or None for a rest, quarter length, tied),
    already transposed; ``tied`` marks a note continuing the previous one (an ABC tie).
    ``bar_pos`` gives each event's position in its bar (ql), or None without a meter."""

    ref: str
    title: str = ""
    signature: str = ""
    meter: str | None = None
    bar_ql: float | None = None
    key_field: str | None = None
    key: str = ""
    key_source: str = ""
    transpose: int = 0
    events: list = field(default_factory=list)
    bar_pos: list | None = None

    @property
    def tokens(self) -> list:
        return encode(self.events)

    @property
    def length_ql(self) -> float:
        return float(sum(e[1] for e in self.events))

    def notes(self) -> list:
        """Onsets as (pitch, ql until the next onset or the end, bar position): rests fold into
        the note before them, tied notes merge; a leading rest is dropped."""
        out = []
        for k, (p, ql, tied) in enumerate(self.events):
            pos = None if self.bar_pos is None else self.bar_pos[k]
            if p is not None and not tied:
                out.append([p, ql, pos])
            elif out:
                out[-1][1] += ql
        return [tuple(o) for o in out]


def _events_from_score(score):
    """(events, bar positions or None, bar length or None, meter string or None)."""
    parts = score.parts if hasattr(score, "parts") and score.parts else [score]
    part = parts[0]
    measures = list(part.getElementsByClass("Measure"))
    ts = part.flatten().getElementsByClass("TimeSignature").first()
    bar_ql = float(ts.barDuration.quarterLength) if ts is not None else None
    meter = ts.ratioString if ts is not None else None
    items = []
    if measures and bar_ql:
        for m in measures:
            pad = float(m.paddingLeft)
            for n in m.recurse().notesAndRests:
                items.append((n, pad + float(n.offset)))
        positions = [pos % bar_ql for _, pos in items]
    else:
        items = [(n, None) for n in part.flatten().notesAndRests]
        positions = None
    events = []
    for n, _ in items:
        ql = n.duration.quarterLength
        if n.isRest:
            events.append((None, ql, False))
            continue
        pitch = max(p.midi for p in n.pitches) if n.isChord else n.pitch.midi
        tied = bool(n.tie is not None and n.tie.type in ("stop", "continue"))
        events.append((int(pitch), ql, tied))
    return events, positions, bar_ql, meter


def find_key(score, k_field: str | None) -> tuple:
    """(tonic pitch class, mode, name, source): from K: when it states a mode, else analysis."""
    mode = _key_field_mode(k_field)
    if mode is not None:
        ks = score.flatten().getElementsByClass("KeySignature").first()
        if ks is not None and getattr(ks, "tonic", None) is not None:
            return ks.tonic.pitchClass, ks.mode, f"{ks.tonic.name} {ks.mode}", "K:"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        k = score.analyze("key")  # Aarden-Essen profiles: music21's default, fit on Essen songs
    return k.tonic.pitchClass, k.mode, f"{k.tonic.name} {k.mode}", "analysis"


def transposition(tonic_pc: int, mode: str, score=None) -> int:
    """Semitones (-6..+5) taking the key to C major / A minor; other modes go by signature."""
    if mode == "major":
        target, src = _MAJOR_TARGET, tonic_pc
    elif mode == "minor":
        target, src = _MINOR_TARGET, tonic_pc
    else:  # dorian etc.: move the signature's major tonic to C
        ks = score.flatten().getElementsByClass("KeySignature").first()
        target, src = _MAJOR_TARGET, ks.asKey("major").tonic.pitchClass
    return (target - src + 6) % 12 - 6


def process_tune(tune: str, ref: str = "tune", filter_durations: bool = True,
                 transpose: bool = True) -> Song:
    """One ABC tune -> Song. Raises EsacError (AbcParseError) saying why it is rejected."""
    tune = clean_tune(tune)
    score = parse_abc(tune, ref)
    events, positions, bar_ql, meter = _events_from_score(score)
    for _, ql, _ in events:
        q = float(ql)
        if filter_durations and q not in ACCEPTED_DURATIONS:
            raise EsacError(f"{ref}: duration {ql} ql is not in the accepted set "
                            f"{ACCEPTED_DURATIONS}")
        if abs(q / STEP - round(q / STEP)) > 1e-9 or q <= 0:
            raise EsacError(f"{ref}: duration {ql} ql is not a whole number of sixteenths")
    k_field = header_field(tune, "K")
    shift, key_name, source = 0, "", ""
    if transpose:
        tonic, mode, key_name, source = find_key(score, k_field)
        shift = transposition(tonic, mode, score)
    events = [(None if p is None else p + shift, float(ql), tied) for p, ql, tied in events]
    return Song(ref=ref, title=(header_field(tune, "T") or "").strip(),
                signature=(header_field(tune, "N") or "").strip().split(" ")[0],
                meter=meter, bar_ql=bar_ql, key_field=k_field, key=key_name, key_source=source,
                transpose=shift, events=events, bar_pos=positions)


# ----------------------------------------------------------------------------------------------
# Tokens
# ----------------------------------------------------------------------------------------------
def encode(events, step: float = STEP) -> list:
    """Events (pitch or None, ql, tied) -> tokens at ``step`` ql: pitch at onset, '_' hold,
    'r' rest."""
    tokens: list = []
    prev_rest = False
    for e in events:
        p, ql = e[0], float(e[1])
        tied = bool(e[2]) if len(e) > 2 else False
        n = ql / step
        if abs(n - round(n)) > 1e-9 or n < 1 - 1e-9:
            raise EsacError(f"encode: duration {ql} ql is not a whole number of {step}-ql steps")
        n = int(round(n))
        if p is None:
            head = HOLD if prev_rest else REST
            prev_rest = True
        else:
            head = HOLD if (tied and tokens) else str(int(p))
            prev_rest = False
        tokens.append(head)
        tokens.extend([HOLD] * (n - 1))
    return tokens


def decode(tokens, step: float = STEP) -> list:
    """Tokens -> events [(pitch or None, ql)], one per onset or rest (holds lengthen them)."""
    events: list = []
    for i, t in enumerate(tokens):
        if t == HOLD:
            if not events:
                raise EsacError(f"decode: token {i} is a hold '_' with no note or rest before it")
            events[-1][1] += step
        elif t == REST:
            events.append([None, step])
        else:
            events.append([_pitch(t, i), step])
    return [(p, ql) for p, ql in events]


def _pitch(t, i) -> int:
    try:
        p = int(t)
    except (TypeError, ValueError):
        raise EsacError(f"token {i} is {t!r}: expected a MIDI pitch 0-127, '{HOLD}' or "
                        f"'{REST}'") from None
    if not 0 <= p <= 127:
        raise EsacError(f"token {i} is pitch {p}: MIDI pitches lie in 0-127")
    return p


def parse_tokens(text: str) -> list:
    """'60 _ _ _ 62 _ r _' -> list of tokens, each checked (a clear EsacError otherwise)."""
    tokens = text.split()
    if not tokens:
        raise EsacError("empty token string")
    for i, t in enumerate(tokens):
        if t not in (HOLD, REST):
            _pitch(t, i)
    if tokens[0] == HOLD:
        raise EsacError("token string starts with a hold '_': it needs a pitch or 'r' first")
    return tokens


def looks_like_tokens(text: str) -> bool:
    """True when every whitespace-separated item is an integer, '_' or 'r'."""
    items = text.split()
    return bool(items) and all(t in (HOLD, REST) or t.lstrip("-").isdigit() for t in items)


def tokens_to_notes(tokens, step: float = STEP, velocity: int = 90) -> list:
    """Tokens -> midi.Note list (times in beats = quarter lengths)."""
    notes, t = [], 0.0
    for p, ql in decode(tokens, step):
        if p is not None:
            notes.append(midi.Note(p, t, t + ql, velocity))
        t += ql
    return notes


def tokens_to_midi(path: str, tokens, tempo: float = 120.0, time_signature=(4, 4),
                   step: float = STEP, program: int = 0) -> str:
    """Write tokens as a one-track MIDI file; trailing rests are kept (end-of-track position)."""
    notes = tokens_to_notes(tokens, step)
    return midi.write_midi(path, [midi.Track(notes, program=program, name="melody")], tempo=tempo,
                           time_signature=time_signature, length=len(tokens) * step)


def notes_to_tokens(notes, length_beats: float | None = None, step: float = STEP) -> list:
    """A monophonic note list (beats) -> tokens on the step grid (skyline first if polyphonic)."""
    per_beat = 1.0 / step
    q = midi.quantize(midi.skyline(notes), steps_per_beat=int(round(per_beat)))
    n_steps = max([e for _, _, e, _ in q] + [int(round((length_beats or 0) * per_beat))])
    tokens = [None] * n_steps
    for pitch, s, e, _ in q:
        tokens[s] = str(pitch)
        for k in range(s + 1, e):
            if tokens[k] is None:
                tokens[k] = HOLD
    out, in_rest = [], False
    for t in tokens:
        if t is None:
            out.append(HOLD if in_rest else REST)
            in_rest = True
        else:
            out.append(t)
            in_rest = False
    return out


def midi_to_tokens(path: str, step: float = STEP, channel: int | None = None) -> list:
    """Read a MIDI file (midi.read_midi) and encode its melody line as tokens."""
    song = midi.read_midi(path)
    return notes_to_tokens(song.melody(channel=channel), song.length, step)


def abc_to_tokens(text: str, transpose: bool = True) -> tuple:
    """An ABC tune (or bare ABC body) -> (tokens, Song); AbcParseError if it does not parse."""
    check_abc_music(text or "", "ABC prime")
    song = process_tune(text, ref="ABC prime", filter_durations=False, transpose=transpose)
    return song.tokens, song


# ----------------------------------------------------------------------------------------------
# Corpus loading with a cache
# ----------------------------------------------------------------------------------------------
def _settings_key(path: str, limit: int | None) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        h.update(f.read())
    h.update(json.dumps([PIPELINE_VERSION, ACCEPTED_DURATIONS, STEP, limit]).encode())
    return h.hexdigest()[:16]


def process_file(path: str, limit: int | None = None, progress: bool = False) -> dict:
    """Parse every tune of one .abc file: {'songs': [Song dicts], 'dropped': {reason: count}}."""
    stem = os.path.splitext(os.path.basename(path))[0]
    tunes = split_tunes(read_abc_file(path))
    if limit is not None:
        tunes = tunes[:limit]
    songs, dropped = [], {}
    it = tunes
    if progress:
        from tqdm import tqdm  # noqa: PLC0415

        it = tqdm(tunes, desc=f"parse {stem}", unit="tune", leave=False)
    for tune in it:
        x = (header_field(tune, "X") or "?").strip()
        ref = f"{stem}#{x}"
        try:
            songs.append(asdict(process_tune(tune, ref)))
        except AbcParseError:
            dropped["parse error"] = dropped.get("parse error", 0) + 1
        except EsacError as exc:
            reason = "duration" if "duration" in str(exc) else "other"
            dropped[reason] = dropped.get(reason, 0) + 1
    return {"file": stem, "tunes": len(tunes), "songs": songs, "dropped": dropped}


def load_file(name: str, data_dir: str | None = None, cache: str | None = None,
              limit: int | None = None, use_cache: bool = True, progress: bool = False) -> dict:
    """One file's processed tunes, from the cache when it is there and current."""
    path = os.path.join(essen_dir(data_dir), f"{name}.abc")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"EsAC file not found: {path}")
    key = _settings_key(path, limit)
    cpath = os.path.join(cache_dir(cache), f"{name}-{key}.json")
    if use_cache and os.path.isfile(cpath):
        try:
            with open(cpath) as f:
                return json.load(f)
        except (OSError, json.JSONDecodeError):
            pass  # a damaged cache is rebuilt
    result = process_file(path, limit=limit, progress=progress)
    if use_cache:
        os.makedirs(os.path.dirname(cpath), exist_ok=True)
        tmp = cpath + ".tmp"
        with open(tmp, "w") as f:
            json.dump(result, f)
        os.replace(tmp, cpath)
    return result


def _song_from_dict(d: dict) -> Song:
    d = dict(d)
    d["events"] = [(e[0], float(e[1]), bool(e[2])) for e in d["events"]]
    return Song(**d)


def load_songs(subset="han", data_dir: str | None = None, cache: str | None = None,
               limit: int | None = None, use_cache: bool = True, progress: bool = False) -> tuple:
    """Songs of a subset name ('han', 'kinder', 'german', 'all') or a list of file stems.

    ``limit`` keeps the first ``limit`` tunes of each file (for quick tests).
    Returns (songs, stats) with stats = {'tunes': n, 'kept': n, 'dropped': {reason: n}}.
    """
    if isinstance(subset, str):
        if subset not in SUBSETS:
            raise EsacError(f"unknown EsAC subset {subset!r}: choose from {sorted(SUBSETS)} or "
                            "pass a list of file names")
        files = SUBSETS[subset]
    else:
        files = tuple(subset)
    songs, stats = [], {"tunes": 0, "kept": 0, "dropped": {}}
    for name in files:
        res = load_file(name, data_dir, cache, limit, use_cache, progress)
        stats["tunes"] += res["tunes"]
        for k, v in res["dropped"].items():
            stats["dropped"][k] = stats["dropped"].get(k, 0) + v
        songs.extend(_song_from_dict(d) for d in res["songs"])
    stats["kept"] = len(songs)
    return songs, stats


__all__ = [
    "ACCEPTED_DURATIONS", "STEP", "HOLD", "REST", "SUBSETS", "EsacError", "AbcParseError", "Song",
    "resolve_data_dir", "essen_dir", "cache_dir", "read_abc_file", "split_tunes", "parse_abc",
    "process_tune", "find_key", "transposition", "encode", "decode", "parse_tokens",
    "looks_like_tokens", "tokens_to_notes", "tokens_to_midi", "notes_to_tokens", "midi_to_tokens",
    "abc_to_tokens", "load_file", "load_songs",
]
