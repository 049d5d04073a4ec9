"""ABC tunes as text: reading collections and writing each tune in one canonical form.

The canonical form, which the character LSTM learns and writes, is::

    X:1
    M:6/8
    L:1/8
    K:D
    <body lines>

* ``X:`` is renumbered to 1; ``M:``, ``L:`` and ``K:`` are normalised (``C`` -> 4/4,
  ``C|`` -> 2/2; L: filled with ABC's default when missing: 1/16 below 3/4, else 1/8; keys
  spelled ``G``, ``Em``, ``ADor``, ``DMix``... without comments);
* comments, lyrics (``w:``/``W:``), text annotations (``"^Segno"``, fingerings ``"4"``) and every
  other field (titles, sources, notes, parts, tempo...) are dropped; chord symbols (``"G"``,
  ``"D7"``) are music and stay;
* a ``M:``/``L:``/``K:`` field in the body *before the first music line* replaces the header's
  (Nottingham writes ``M:4/4``, ``K:A``, then ``M:6/8`` for a tune in 6/8); after music has
  started it is a real change and stays as a body line;
* MIT's old line-break mark, a trailing unpaired ``!``, is removed (in ABC 2.1 ``!`` delimits
  decorations such as ``!trill!``);
* trailing whitespace and blank lines inside a tune are removed.

Sources: the combined ``tunes.jsonl`` of ``../shared/data/folk-abc``, a ``.abc`` file, or a
directory of ``.abc`` files. Bad input raises ``AbcInputError`` naming the file and the problem.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from fractions import Fraction

from apps.common.errors import InputError


class AbcInputError(InputError):
    """An input file that is empty, not UTF-8, or holds no ABC tune."""


@dataclass
class RawTune:
    """One tune as found in a source: where it came from and its original text."""

    source: str      # file path (and line number for tunes.jsonl)
    index: int       # 0-based position in the collection (the train/validation split uses it)
    abc: str


# ----------------------------------------------------------------------------------------------
# Reading sources
# ----------------------------------------------------------------------------------------------
def _read_text(path: str) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise AbcInputError(f"{path}: cannot read: {exc.strerror}") from exc
    if not data.strip():
        raise AbcInputError(f"{path}: the file is empty")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise AbcInputError(
            f"{path}: not UTF-8 text (invalid byte 0x{data[exc.start]:02x} at byte {exc.start}, "
            f"line {line}); convert it to UTF-8 first"
        ) from None


_X_LINE = re.compile(r"^X:", re.MULTILINE)


def split_abc_file(text: str, path: str = "<text>") -> list[str]:
    """The tunes of an ABC file: each from its ``X:`` line up to the next ``X:`` line."""
    starts = [m.start() for m in _X_LINE.finditer(text)]
    tunes = []
    for a, b in zip(starts, starts[1:] + [len(text)]):
        tunes.append(text[a:b].rstrip() + "\n")
    if not tunes or not any(re.search(r"^K:", t, re.MULTILINE) for t in tunes):
        raise AbcInputError(
            f"{path}: no ABC tune found (a tune starts with an 'X:' line and has a 'K:' key line)"
        )
    return tunes


def read_tunes(path: str) -> list[RawTune]:
    """Tunes from tunes.jsonl (field ``abc``), one .abc file, or a directory of .abc files."""
    if os.path.isdir(path):
        files = sorted(os.path.join(dp, f) for dp, _, fs in os.walk(path) for f in fs
                       if f.lower().endswith(".abc"))
        if not files:
            raise AbcInputError(f"{path}: the directory holds no .abc file")
        tunes: list[RawTune] = []
        for f in files:
            for t in split_abc_file(_read_text(f), f):
                tunes.append(RawTune(f, len(tunes), t))
        return tunes
    if not os.path.exists(path):
        raise AbcInputError(f"{path}: no such file or directory")
    text = _read_text(path)
    if path.endswith(".jsonl"):
        tunes = []
        for lineno, line in enumerate(text.splitlines()):
            if not line.strip():
                continue
            try:
                abc = json.loads(line)["abc"]
            except (json.JSONDecodeError, KeyError, TypeError, RecursionError) as exc:
                raise AbcInputError(f"{path}:{lineno + 1}: not a JSON object with an 'abc' "
                                    f"field ({type(exc).__name__}: {exc})") from None
            if not isinstance(abc, str):
                kind = {type(None): "null", bool: "a boolean", int: "a number",
                        float: "a number", list: "an array", dict: "an object"}[type(abc)]
                raise AbcInputError(f"{path}:{lineno + 1}: the 'abc' field is {kind}, not the "
                                    "tune's ABC text (a JSON string)")
            # The split rule counts 0-based *line numbers* of tunes.jsonl.
            tunes.append(RawTune(f"{path}:{lineno + 1}", lineno, abc))
        if not tunes:
            raise AbcInputError(f"{path}: no tunes")
        return tunes
    return [RawTune(path, i, t) for i, t in enumerate(split_abc_file(text, path))]


# ----------------------------------------------------------------------------------------------
# Field normalisation
# ----------------------------------------------------------------------------------------------
_FIELD = re.compile(r"^([A-Za-z]):\s*(.*)$")
_MODES = {"": "", "maj": "", "major": "", "ion": "", "ionian": "", "m": "m", "min": "m",
          "minor": "m", "aeo": "m", "aeolian": "m", "dor": "Dor", "dorian": "Dor", "mix": "Mix",
          "mixolydian": "Mix", "phr": "Phr", "phrygian": "Phr", "lyd": "Lyd", "lydian": "Lyd",
          "loc": "Loc", "locrian": "Loc"}


def strip_comment(value: str) -> str:
    """A field value without its trailing ``% comment``."""
    return value.split("%", 1)[0].strip()


def normalise_meter(value: str) -> str | None:
    """'C' -> '4/4', 'C|' -> '2/2', '6/8' -> '6/8', 'none' -> 'none'; None if unreadable."""
    v = strip_comment(value).replace(" ", "")
    if v == "C":
        return "4/4"
    if v == "C|":
        return "2/2"
    if v.lower() in ("none", ""):
        return "none"
    return v if meter_fraction(v) is not None else None


def meter_fraction(meter: str) -> Fraction | None:
    """'6/8' -> 3/4, '2+3/8' -> 5/8 (a bar in whole notes); None unless it is a meter of whole
    numbers with a bar longer than zero ('1/0' and '0/4' are not meters)."""
    m = re.fullmatch(r"(\d+(?:\+\d+)*)/(\d+)", meter)
    if not m:
        return None
    beats, unit = sum(int(n) for n in m.group(1).split("+")), int(m.group(2))
    return Fraction(beats, unit) if beats > 0 and unit > 0 else None


def default_unit_length(meter: str) -> str:
    """ABC's default L: 1/16 when the meter is below 3/4 (as a fraction), else 1/8."""
    frac = meter_fraction(meter)
    return "1/16" if frac is not None and frac < Fraction(3, 4) else "1/8"


def normalise_unit(value: str) -> str | None:
    """'1/8' -> '1/8'; None unless it is a note length longer than zero ('1/0', '0/8')."""
    v = strip_comment(value).replace(" ", "")
    m = re.fullmatch(r"(\d+)/(\d+)", v)
    return v if m and int(m.group(1)) > 0 and int(m.group(2)) > 0 else None


def normalise_key(value: str) -> str | None:
    """'G Major' -> 'G', 'E Minor' -> 'Em', 'ADor'/'A Dorian' -> 'ADor', 'Glyd' -> 'GLyd',
    'Dmix % comment' -> 'DMix', 'none'/'HP' -> kept; None if unreadable."""
    v = strip_comment(value)
    if not v:
        return None
    if v.lower() in ("none", "hp", "hp"):
        return v.upper() if v.lower() == "hp" else "none"
    m = re.match(r"^([A-Ga-g])\s*([#b]?)\s*([A-Za-z]*)", v)
    if not m:
        return None
    tonic = m.group(1).upper() + m.group(2)
    mode = m.group(3).lower()
    # the mode may be followed by clef or accidental specs; only the first 3+ letters matter
    for name in (mode, mode[:3]):
        if name in _MODES:
            return tonic + _MODES[name]
    return tonic if mode in ("exp", "clef", "treble", "bass", "alto") else None


# ----------------------------------------------------------------------------------------------
# The canonical form
# ----------------------------------------------------------------------------------------------
_QUOTED = re.compile(r'"([^"]*)"')
_CHORD = re.compile(r"^\(?[A-G][#b]?[^\"]*$|^N\.?C\.?$")


def _clean_music_line(line: str) -> str:
    line = line.split("%", 1)[0] if "%" in line else line
    # keep chord symbols, drop text annotations ("^Segno", "_mf", fingerings "4", "<", "@"...)
    line = _QUOTED.sub(lambda m: m.group(0) if _CHORD.match(m.group(1)) else "", line)
    line = line.rstrip()
    if line.endswith("!") and line.count("!") % 2 == 1:
        line = line[:-1].rstrip()  # MIT's old line-break mark
    return line


def canonical_tune(abc: str, source: str = "<tune>") -> str | None:
    """The tune in canonical form (see the module docstring), or None if it has no key line
    or no music (a header-only entry). Ends with a newline."""
    meter = unit = key = None
    header_done = False  # True after the K: line
    music_started = False
    body: list[str] = []
    for raw in abc.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = raw.strip("\ufeff").rstrip()
        if not line.strip() or line.lstrip().startswith("%"):
            continue
        m = _FIELD.match(line)
        if m and not line.startswith("|"):
            field, value = m.group(1), m.group(2)
            if field in "wW":
                continue  # lyrics
            if field == "M":
                v = normalise_meter(value)
                if v is None:
                    continue
                if not music_started:
                    meter = v
                else:
                    body.append(f"M:{v}")
            elif field == "L":
                v = normalise_unit(value)
                if v is None:
                    continue
                if not music_started:
                    unit = v
                else:
                    body.append(f"L:{v}")
            elif field == "K":
                v = normalise_key(value)
                if v is None:
                    continue
                if not header_done or not music_started:
                    key, header_done = v, True
                else:
                    body.append(f"K:{v}")
            # every other field (T:, R:, Z:, N:, B:, P:, Q:, I:, ...) is dropped
            continue
        if not header_done:
            continue  # text before K: that is not a field (file headers, prose)
        cleaned = _clean_music_line(line)
        if cleaned.strip():
            body.append(cleaned)
            music_started = True
    if key is None or not music_started:
        return None
    meter = meter or "none"
    unit = unit or default_unit_length(meter)
    return "\n".join(["X:1", f"M:{meter}", f"L:{unit}", f"K:{key}", *body]) + "\n"


@dataclass
class PreparedCorpus:
    train: list[str]
    val: list[str]
    dropped: list[str]   # sources of tunes without key or music


def prepare_corpus(path: str, val_every: int = 20) -> PreparedCorpus:
    """Canonical tunes split deterministically: index % val_every == 0 goes to validation.

    A run needs at least one tune on each side. When that rule leaves one side empty (a tiny
    corpus: its first tune unusable, or only tunes at multiples of ``val_every`` usable), the
    first usable tune alone is held out; a corpus of a single usable tune is refused, with that
    reason.
    """
    usable, dropped = [], []
    for raw in read_tunes(path):
        tune = canonical_tune(raw.abc, raw.source)
        if tune is None:
            dropped.append(raw.source)
        else:
            usable.append((raw.index, tune))
    if not usable:
        raise AbcInputError(f"{path}: no usable ABC tune (every tune lacked a K: line or music)")
    if len(usable) == 1:
        raise AbcInputError(
            f"{path}: only one usable ABC tune ({len(dropped)} dropped without a K: line or "
            "music); training needs at least two, one to learn from and one held out for "
            f"validation (every {val_every}th tune, starting with the first, is held out)")
    held_out = {i for i, _ in usable if i % val_every == 0}
    if not held_out or len(held_out) == len(usable):  # tiny corpora: one tune on each side
        held_out = {usable[0][0]}
    train = [t for i, t in usable if i not in held_out]
    val = [t for i, t in usable if i in held_out]
    return PreparedCorpus(train, val, dropped)


def join_tunes(tunes: list[str]) -> str:
    """Tunes separated by one blank line (each tune ends with a newline)."""
    return "\n".join(tunes)


def split_generated(text: str) -> list[str]:
    """Tunes in generated text: blocks separated by blank lines that start with ``X:``."""
    blocks = [b.strip("\n") + "\n" for b in re.split(r"\n\s*\n", text) if b.strip()]
    return [b for b in blocks if b.startswith("X:")]
