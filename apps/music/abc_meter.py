"""Following an ABC tune's bars character by character, so that sampling can keep every bar whole.

A :class:`BarTracker` reads a tune one character at a time, as a character LSTM writes it, and
keeps what the music so far implies: the meter (``M:``) and unit note length (``L:``) in force,
how much of the current bar is filled, the note whose length is still being written, broken
rhythms, tuplets, chords, grace notes, chord symbols, decorations, inline fields and barlines.
:meth:`BarTracker.feasible` answers one question: *can this text still be completed so that
every bar fits the meter?* :class:`MeterMask` asks it for every character of a vocabulary, and
the sampler gives zero probability to the characters that would overfill a bar or close it
short.

"Fits" is the rule of ``apps.music.abc_eval.check_abc``: a bar lasts exactly one bar of the
meter, except that it may be *short* when it is the tune's first bar (a pickup) or when a
barline on either side is not a plain ``|`` (a repeat, a double bar, an ending: the end of a
section, or the next section's pickup). An overfull bar never fits. The tune's last bar may be
short: it ends where the tune ends. The explanation, with examples, is docs/abc_meter.md.

Durations are exact fractions of a whole note. A note's length suffix is read as ABC 2.1 says
(``A2``, ``A/``, ``A//``, ``A3/2``, ``A/4``). While a suffix is still open, the lengths it can
still become are those of :data:`LENGTH_FORMS` that begin with it: the usual written lengths,
which also keeps the sampler from inventing lengths such as ``A23``.
"""
from __future__ import annotations

import re
import string
from dataclasses import dataclass, field, replace
from fractions import Fraction

import numpy as np

from .abc_text import default_unit_length, meter_fraction, normalise_meter, normalise_unit

# Written length suffixes of a note, rest or chord, as multiples of the unit length L.
LENGTH_FORMS: dict[str, Fraction] = {
    "": Fraction(1), "2": Fraction(2), "3": Fraction(3), "4": Fraction(4), "5": Fraction(5),
    "6": Fraction(6), "7": Fraction(7), "8": Fraction(8), "9": Fraction(9), "12": Fraction(12),
    "16": Fraction(16), "/": Fraction(1, 2), "/2": Fraction(1, 2), "//": Fraction(1, 4),
    "/4": Fraction(1, 4), "///": Fraction(1, 8), "/8": Fraction(1, 8), "3/2": Fraction(3, 2),
    "3/4": Fraction(3, 4), "3/8": Fraction(3, 8), "5/2": Fraction(5, 2), "5/4": Fraction(5, 4),
    "7/2": Fraction(7, 2), "7/4": Fraction(7, 4), "9/2": Fraction(9, 2), "11/2": Fraction(11, 2),
    "15/2": Fraction(15, 2), "3/": Fraction(3, 2), "1": Fraction(1), "1/2": Fraction(1, 2),
    "1/4": Fraction(1, 4),
}
# for each suffix written so far, the smallest length it can still become
_MIN_REACHABLE: dict[str, Fraction] = {}
for _form in LENGTH_FORMS:
    for _k in range(len(_form) + 1):
        _p = _form[:_k]
        _MIN_REACHABLE[_p] = min(_MIN_REACHABLE.get(_p, LENGTH_FORMS[_form]), LENGTH_FORMS[_form])

NOTE_LETTERS = frozenset("ABCDEFGabcdefg")
RESTS = frozenset("zx")
ACCIDENTALS = frozenset("^_=")
OCTAVE_MARKS = frozenset("',")
_RESETS_IDLE = NOTE_LETTERS | RESTS | ACCIDENTALS | frozenset("[|:Z")
SUFFIX_CHARS = frozenset("0123456789/")
#: marks that take no time and carry no note: staccato, roll, slurs, tie, the openings of a
#: chord symbol, grace group and decoration, and the decoration letters. At most MAX_IDLE_RUN of
#: them between two notes (or barlines): 22 of the training tunes' 90,000 runs are longer (4
#: or 5), and a longer run is how sampling escapes a bar it cannot end ("(({c}T((.{B}...")
IDLE_CHARS = frozenset('.~()-"{!+HIJKLMNOPQRSTUVWXYuv')
MAX_IDLE_RUN = 4
#: the longest chord symbol or annotation between quotes (the training tunes' longest: 33); a
#: quote may hold no barline and no length ("/2"), and must close on its line
MAX_QUOTE = 40
#: what a quote may hold: the characters of the training tunes' chord symbols and annotations
#: ("D/f+", "F#m", "D.C.", "Coda (to replace last 2 measures)"), so no barline, bracket or ":"
QUOTE_CHARS = frozenset(string.ascii_letters + string.digits + " #/.+-()'")
#: decorations that may not be written twice in a row ("TT", "~~": music21 then counts the bar
#: otherwise; no training tune doubles one)
DOUBLED_MARKS = frozenset("~HIJKLMNOPQRSTUVWXYuv")
#: the fields a line of the tune's body may set (the only ones the training tunes use there)
BODY_FIELDS = frozenset("KLM")
#: the inline fields ("[V:2]") the training tunes use
INLINE_FIELDS = frozenset("KLMPV")
PLAIN = "|"
# tuplet (p: p notes in the time of q (ABC 2.1, section 4.13); 0: q depends on the meter
_TUPLET_Q = {2: 3, 3: 2, 4: 3, 5: 0, 6: 2, 7: 0, 8: 3, 9: 0}


# The header the app's canonical tunes have (apps/music/abc_text.py), line by line after X::
# a meter, a unit length, a key. The tracker holds a header being written to these forms, so
# that the bars that follow have a meter and a unit to fit and the key is one music21 reads.
HEADER_FORMS = (
    {f"M:{n}/{d}" for n in range(1, 13) for d in (2, 4, 8, 16)},
    {f"L:1/{d}" for d in (1, 2, 4, 8, 16, 32)},
    {f"K:{t}{a}{m}" for t in "ABCDEFG" for a in ("", "#", "b")
     for m in ("", "m", "Dor", "Mix", "Phr", "Lyd", "Loc")} | {"K:HP"},
)
_HEADER_PREFIXES = tuple({f[:k] for f in forms for k in range(len(f) + 1)}
                         for forms in HEADER_FORMS)


def _fraction(text: str) -> Fraction:
    a, b = text.split("/")
    return Fraction(int(a), int(b))


def suffix_value(suffix: str) -> Fraction:
    """The multiple of L that a complete length suffix means: '' 1, '2' 2, '/' 1/2, '3/2' 3/2."""
    if suffix in LENGTH_FORMS:
        return LENGTH_FORMS[suffix]
    m = re.fullmatch(r"(\d*)(/*)(\d*)", suffix)
    num = int(m.group(1)) if m and m.group(1) else 1
    if not m or not m.group(2):
        return Fraction(num)
    den = int(m.group(3)) if m.group(3) else 2 ** len(m.group(2))
    if den == 0:  # 'A/0' is no length ABC knows; the tracker has already marked the tune broken
        return Fraction(num)
    return Fraction(num, den)


@dataclass
class _Note:
    """A note, rest or chord whose length suffix may still grow.

    ``base`` is its length before the suffix: L (or, for a chord, its first inner note's length)
    times the tuplet and broken-rhythm factors in force when it started."""

    base: Fraction
    suffix: str = ""
    letter: bool = False     # the pitch letter (or rest) has been read


@dataclass
class BarTracker:
    """One tune being written. ``feed(ch)`` advances it; ``feasible()`` says whether every bar
    can still fit; ``bars`` lists the bars closed so far as (duration, bar length, left barline,
    right barline), in quarter notes, like ``abc_eval.bar_durations``."""

    bar: Fraction | None = None      # one bar of the meter, in whole notes (None: no meter)
    unit: Fraction | None = None     # L:
    meter: str | None = None
    in_body: bool = False            # after the K: header line
    header_lines: int = 0            # header lines read (X:, M:, L:, K:)
    line: str = ""                   # the current line (field lines are read at their end)
    mode: str = "music"              # music field inline quote deco plus grace comment
    quote_last: str = ""             # the character before this one inside "..."
    quote_len: int = 0               # characters inside "..." so far
    last_mark: str = ""              # the decoration just read ("T", "~"), if the last character
    held: str = ""                   # a letter starting a body line: a note, or a field ("M:")?
    fill: Fraction = Fraction(0)     # closed notes of the current bar
    fill_before_last: Fraction = Fraction(0)
    last: Fraction = Fraction(0)     # the last closed note's length as written (broken rhythm)
    note: _Note | None = None        # the note, rest or chord whose suffix is open
    chord: Fraction | None = None    # inside [...]: the factor for the chord (None: not in one)
    chord_first: Fraction | None = None  # the first inner note's suffix value
    chord_note: _Note | None = None
    broken_run: str = ""             # ">", ">>", "<"... just written after a note
    next_factor: Fraction = Fraction(1)  # broken rhythm's factor for the next note
    tuplet_text: str = ""            # "(3:2" being read
    tuplet_left: int = 0
    tuplet_factor: Fraction = Fraction(1)
    idle_run: int = 0                # ".~()" read in a row (no note between): capped
    multirest: bool = False          # "Z" just read: digits may follow ("Z4": four bars)
    bracket: bool = False            # "[" read: chord, inline field, "[|" or an ending "[1"
    inline: str = ""
    barline: str = ""                # the barline being written
    left: str = PLAIN                # the current bar's left barline
    closed_bars: int = 0             # bars holding music closed so far
    must_end: bool = False           # a short bar closed at a line end: only the tune's end fits
    broken: bool = False             # no continuation can make every bar fit any more
    bars: list = field(default_factory=list)

    # ------------------------------------------------------------------------------------------
    def copy(self) -> BarTracker:
        new = replace(self)
        new.bars = []                # candidates are only asked about feasibility
        if self.note is not None:
            new.note = replace(self.note)
        if self.chord_note is not None:
            new.chord_note = replace(self.chord_note)
        return new

    def key(self) -> tuple:
        """The state that decides feasibility now and later (masks are memoised on it)."""
        n, c = self.note, self.chord_note
        return (self.bar, self.unit, self.in_body, self.header_lines, self.line == "",
                self.mode, self.held,
                self.fill, self.fill_before_last, self.last,
                None if n is None else (n.base, n.suffix, n.letter), self.chord, self.chord_first,
                None if c is None else (c.base, c.suffix, c.letter), self.broken_run,
                self.next_factor, self.tuplet_text, self.tuplet_left, self.tuplet_factor,
                self.idle_run, self.multirest,
                self.bracket, self.inline if self.mode == "inline" else "",
                (self.quote_last, self.quote_len >= MAX_QUOTE) if self.mode == "quote" else "",
                self.last_mark, self.barline,
                self.left, self.closed_bars > 0, self.must_end, self.broken,
                self.line if self.mode == "field" or not self.in_body else "")

    # ------------------------------------------------------------------------------------------
    def feed_text(self, text: str) -> BarTracker:
        for ch in text:
            self.feed(ch)
        return self

    def feed(self, ch: str) -> None:
        if ch == "\n":
            self._end_line()
            return
        if self.must_end:
            self.broken = True           # music after a short bar that could only be the last
        first = self.line == ""
        self.line += ch
        if self.mode == "field":
            if not self.in_body:
                self._check_header(final=False)
            return
        if not self.in_body:            # header lines are fields: read when they end
            self.mode = "field"
            self._check_header(final=False)
            return
        if self.held:                   # "M" then ":" is a field line; "A" then "2" a note
            held, self.held = self.held, ""
            if ch == ":":
                self.mode = "field"
                if held not in BODY_FIELDS:
                    self.broken = True  # "B:|": music21 reads it as notes, not a field
                return
            self._music(held)
        elif first and ch.isalpha() and self.mode == "music" and not self.barline \
                and self.note is None:
            self.held = ch
            return
        self._music(ch)

    def _end_line(self) -> None:
        line, mode = self.line, self.mode
        self.line = ""
        if not self.in_body and mode != "field":
            self.broken = True          # an empty line before K: would end the tune headless
            return
        if mode == "field":
            self.mode = "music"
            if not self.in_body:
                self._check_header(final=True, line=line)
                self.header_lines += 1
            if re.match(r"^[A-Za-z]:", line):
                self._field(line[0], line[2:])
            return
        if self.held:
            held, self.held = self.held, ""
            self._music(held)
        if self.tuplet_text or self.tuplet_left or self.bracket or self.chord is not None \
                or self.mode in ("inline", "quote"):
            self.broken = True          # a tuplet, "[", chord or quote left open at a line end
        if self.mode in ("comment", "quote", "deco", "plus", "inline"):
            self.mode = "music"         # none of these runs across a line end
        self._close_pending()
        self._close_barline(line_end=True)

    def _check_header(self, final: bool, line: str | None = None) -> None:
        """A header line must be (or still become) the canonical form for its place: X:n, then
        M:, L: and K: from ``HEADER_FORMS``."""
        line = self.line if line is None else line
        k = self.header_lines
        if k == 0:
            ok = re.fullmatch(r"X(:\d*)?" if not final else r"X:\d+", line) is not None
        elif k <= len(HEADER_FORMS):
            ok = line in (HEADER_FORMS[k - 1] if final else _HEADER_PREFIXES[k - 1])
        else:
            ok = False
        if not ok:
            self.broken = True

    def _field(self, name: str, value: str) -> None:
        if name == "M":
            self.meter = normalise_meter(value)
            self.bar = meter_fraction(self.meter) if self.meter else None
        elif name == "L":
            u = normalise_unit(value)
            if u is not None:
                self.unit = _fraction(u)
        elif name == "K" and not self.in_body:
            self.in_body = True
            if self.unit is None:
                self.unit = _fraction(default_unit_length(self.meter or "none"))

    # -- music ----------------------------------------------------------------------------------
    def _music(self, ch: str) -> None:
        mode = self.mode
        if mode != "music":
            if mode == "inline":
                if len(self.inline) == 1 and ch != ":":
                    self.broken = True  # "[V2C2]": neither a chord nor an inline field
                elif ch == "]":
                    self.mode = "music"
                    if re.match(r"^[A-Za-z]:", self.inline):
                        self._field(self.inline[0], self.inline[2:])
                else:
                    self.inline += ch
            elif (mode, ch) in (("quote", '"'), ("deco", "!"), ("plus", "+"), ("grace", "}")):
                self.mode = "music"
            elif mode == "quote":
                # a chord symbol or annotation holds no barline and no length ("/2"): none of
                # the real tunes' 26,025 do, and music21 then reads notes the tracker skipped
                self.quote_len += 1
                if ch not in QUOTE_CHARS or (self.quote_last == "/" and ch.isdigit()) \
                        or self.quote_len > MAX_QUOTE:
                    self.broken = True
                self.quote_last = ch
            return
        if self.bracket:
            self.bracket = False
            if ch.isalpha() and ch not in NOTE_LETTERS and ch not in RESTS:
                if ch not in INLINE_FIELDS:
                    self.broken = True                       # "[k": music21 fails on it
                self.mode, self.inline = "inline", ch        # [M:3/4], [K:G]
                return
            if ch == "|" or ch.isdigit():
                if ch.isdigit() and ch not in "12":
                    self.broken = True   # "[4" in a bar: music21 reads it otherwise
                self._close_pending()
                self.barline = "[" + ch                      # "[|", or an ending "[1"
                return
            self._start_chord()
        if self.barline:
            if self._barline_continues(ch):
                self.barline += ch
                return
            self._close_barline()
        if self.tuplet_text:
            if self._tuplet_continues(ch):
                self.tuplet_text += ch
                return
            self._start_tuplet()
        note = self.chord_note if self.chord is not None else self.note
        after_note = note is not None and note.letter
        if note is not None:
            if ch in OCTAVE_MARKS and not note.suffix:
                return
            if not note.letter and (ch in NOTE_LETTERS or ch in RESTS or ch in ACCIDENTALS):
                note.letter = ch not in ACCIDENTALS              # "^^" then "G": one note
                return
            if ch in SUFFIX_CHARS and note.letter:
                note.suffix += ch
                if note.suffix not in _MIN_REACHABLE:
                    self.broken = True                           # not a length we accept
                return
            self._close_pending()
        if ch in "><" and self.chord is None:
            if not (after_note or self.broken_run):
                self.broken = True      # music21 reads ">" as broken rhythm only after a note
                return
            self._broken_rhythm(ch)
            return
        self.broken_run = ""
        self._token(ch)

    def _token(self, ch: str) -> None:
        multirest, self.multirest = self.multirest, False
        if ch in SUFFIX_CHARS:
            if not (multirest and ch.isdigit()):
                self.broken = True      # a length with no note before it ('"D7"/2', "-/2")
            self.multirest = multirest
            return
        if ch in DOUBLED_MARKS and ch == self.last_mark:
            self.broken = True          # "TT", "~~": music21 counts the bar otherwise
        self.last_mark = ch if ch in DOUBLED_MARKS else ""
        if ch in IDLE_CHARS:
            self.idle_run += 1
            if self.idle_run > MAX_IDLE_RUN:
                self.broken = True      # "(({c}T((.": marks piling up, no music
        elif ch in _RESETS_IDLE:
            self.idle_run = 0
        if ch in NOTE_LETTERS or ch in RESTS or ch in ACCIDENTALS:
            letter = ch not in ACCIDENTALS
            if self.chord is not None:
                self.chord_note = _Note(Fraction(1), letter=letter)
            else:
                self._start_note(self.unit or Fraction(1, 8), letter)
        elif ch == "]" and self.chord is not None:
            first = self.chord_first if self.chord_first is not None else Fraction(1)
            base, self.chord, self.chord_first = (self.unit or Fraction(1, 8)) * first * \
                self.chord, None, None
            self.note = _Note(base, letter=True)
        elif ch == "[":
            self.bracket = True
        elif ch in "|:":
            self.barline = ch
        elif ch == "Z":                 # a multi-bar rest fills the bar
            if self.bar is not None:
                self.fill = max(self.fill, self.bar)
            self.multirest = True
        elif ch == "(":
            self.tuplet_text = "("
        elif ch == "{" and self.tuplet_left:
            self.broken = True          # music21 counts a grace note as one of the tuplet's
        else:
            self.mode = {'"': "quote", "!": "deco", "+": "plus", "{": "grace",
                         "%": "comment"}.get(ch, "music")
            self.quote_last, self.quote_len = "", 0
        # anything else (spaces, ties "-", slurs ")", decorations ~ . H-W, "y", "`", "\\")
        # takes no time

    def _factor(self) -> Fraction:
        """The broken-rhythm and tuplet factors for the note starting now (and use them up)."""
        f, self.next_factor = self.next_factor, Fraction(1)
        if self.tuplet_left:
            f *= self.tuplet_factor
            self.tuplet_left -= 1
        return f

    def _start_note(self, unit: Fraction, letter: bool) -> None:
        if self.bar is not None and self.fill >= self.bar:
            self.broken = True          # no room left in the bar for another note
        self.note = _Note(unit * self._factor(), letter=letter)

    def _start_chord(self) -> None:
        if self.bar is not None and self.fill >= self.bar:
            self.broken = True
        self.chord, self.chord_first, self.chord_note = self._factor(), None, None

    def _close_pending(self) -> None:
        """The open note (or chord's inner note) is complete: add its length to the bar."""
        if self.chord is not None:
            n, self.chord_note = self.chord_note, None
            if n is not None and n.letter and self.chord_first is None:
                self.chord_first = suffix_value(n.suffix)
            return
        n, self.note = self.note, None
        if n is None:
            return
        length = n.base * suffix_value(n.suffix)
        self.fill_before_last, self.last = self.fill, length
        self.fill += length
        if self.bar is not None and self.fill > self.bar:
            self.broken = True

    def _broken_rhythm(self, ch: str) -> None:
        """A>B: A lasts 3/2 of its written length and B 1/2; >> 7/4 and 1/4; < the other way."""
        self.broken_run += ch
        k = len(self.broken_run)
        if k > 3 or len(set(self.broken_run)) > 1:
            self.broken = True
            return
        short, long_ = Fraction(1, 2 ** k), 2 - Fraction(1, 2 ** k)
        self.fill = self.fill_before_last + self.last * (long_ if ch == ">" else short)
        self.next_factor = short if ch == ">" else long_
        if self.bar is not None and self.fill > self.bar:
            self.broken = True

    def _tuplet_continues(self, ch: str) -> bool:
        """Does ``ch`` continue the tuplet mark being read? Only the forms the training tunes
        use (7,700 "(3", a few "(5", "(9", "(3:2"): "(p" with p 2-9, and "(p:q" with q the
        standard q for p (ABC 2.1, 4.13), which music21 reads as the tracker does. Anything else
        ends the mark ("(" alone is a slur); a mark ending in ":" is refused."""
        parts = self.tuplet_text[1:].split(":")
        if ch == ":":
            return parts[0] != "" and len(parts) == 1
        if not ch.isdigit():
            return False
        if len(parts) == 1:
            return parts[0] == "" and ch in "23456789"
        q = _TUPLET_Q[int(parts[0])]
        return parts[1] == "" and (int(ch) == q or q == 0 and ch in "23")

    def _tuplet_least(self) -> Fraction:
        """For the tuplet mark being written ("(p" or "(p:q", q the standard one): the least
        total factor its p notes can take, p * q / p = q (2 where q depends on the meter)."""
        return Fraction(_TUPLET_Q[int(self.tuplet_text[1:].split(":")[0])] or 2)

    def _start_tuplet(self) -> None:
        text, self.tuplet_text = self.tuplet_text, ""
        m = re.fullmatch(r"\((\d+)(?::(\d*))?(?::(\d*))?", text)
        if not m:
            return                      # "(" then something else: a slur
        if text.endswith(":"):
            self.broken = True          # "(3:" with no q: a form music21 reads otherwise
            return
        if self.tuplet_left:
            self.broken = True          # "(3(3": a tuplet inside one not yet complete
            return
        p = int(m.group(1))
        q = int(m.group(2)) if m.group(2) else _TUPLET_Q.get(p, 0)
        if q == 0:
            compound = self.bar is not None and self.bar.denominator == 8 \
                and self.bar.numerator % 3 == 0
            q = 3 if compound else 2
        r = int(m.group(3)) if m.group(3) else p
        if p > 0 and q > 0 and r > 0:
            self.tuplet_left, self.tuplet_factor = r, Fraction(q, p)

    # -- barlines -------------------------------------------------------------------------------
    def _barline_continues(self, ch: str) -> bool:
        """Does ``ch`` continue the barline being written? Endings are "|1" and "|2" (and
        ":|2"), as music21 reads them; a later digit is not part of the barline."""
        b = self.barline
        if len(b) >= 4:
            return False
        if ch.isdigit():
            return ch in "12" and not b[-1].isdigit() and not b.startswith("[")
        return ch in "|]:" and not b[-1].isdigit() and not b.endswith("]")

    def _close_barline(self, line_end: bool = False) -> None:
        """The barline is complete: close the bar and check it. A short bar between plain
        barlines fits only as the tune's last bar, so at a line end it leaves ``must_end``."""
        mark, self.barline = self.barline, ""
        if not mark:
            return
        self._close_pending()
        if self.tuplet_left:
            self.broken = True          # a tuplet across a barline: music21 reads it otherwise
        # "|1" and ":|2" close the bar with "|" / ":|" and open the ending "[1" / "[2"
        opens = mark
        if mark[-1].isdigit() and not mark.startswith("["):
            mark, opens = mark[:-1], "[" + mark[-1]
        if self.fill > 0:
            length = self.fill
            if self.bar is not None and length != self.bar and not (
                    length < self.bar and (self.closed_bars == 0 or self.left != PLAIN
                                           or mark != PLAIN)):
                if line_end and length < self.bar:
                    self.must_end = True
                else:
                    self.broken = True
            self.bars.append((float(length * 4), None if self.bar is None else float(self.bar * 4),
                              self.left, mark))
            self.closed_bars += 1
            self.left = opens
        elif opens != PLAIN and self.left == PLAIN:
            self.left = opens           # an empty bar (":|" then "[2"): merge its barline
        self.fill = self.fill_before_last = self.last = Fraction(0)
        self.broken_run = ""

    # ------------------------------------------------------------------------------------------
    def feasible(self) -> bool:
        """Can the text so far still be completed with every bar fitting the meter?"""
        if self.broken:
            return False
        if self.bar is None or not self.in_body:
            return True                 # no meter, or the header
        if self.held:                   # a letter starting a line: a field only if K:, L:, M:
            if self.held in BODY_FIELDS:
                return True
            t = self.copy()
            held, t.held = t.held, ""
            t._music(held)
            return t.feasible()
        n = self.note
        if n is not None and self.fill + n.base * _MIN_REACHABLE[n.suffix] > self.bar:
            return False                # the open note cannot get short enough
        if self.chord is not None and self.fill >= self.bar:
            return False
        shortest = (self.unit or Fraction(1, 8)) * _MIN_REACHABLE[""]
        if self.tuplet_left and self.fill + self.tuplet_left * self.tuplet_factor * shortest \
                > self.bar:
            return False                # the tuplet's notes cannot all fit in this bar
        if len(self.tuplet_text) > 1 and self.tuplet_left:
            return False                # a tuplet mark inside a tuplet not yet complete ("(3(3")
        if len(self.tuplet_text) > 1 and self.fill + self._tuplet_least() * shortest > self.bar:
            return False                # a tuplet mark being written, and no room for its notes
        b = self.barline
        if b and 0 < self.fill < self.bar and self.closed_bars and self.left == PLAIN:
            # a short bar: its closing barline must not stay a plain "|". A "|" may still
            # become "||", "|]" or "|:"; "|1" / "|2" close it with a plain "|" (the ending
            # opens the next bar)
            return not (b[-1].isdigit() and not b.startswith("[") and b[:-1] == PLAIN)
        return True

    def finish(self) -> list:
        """Close the last bar (the tune's end: it may be short); return every bar."""
        self._end_line()
        if self.fill > 0:
            self.bars.append((float(self.fill * 4),
                              None if self.bar is None else float(self.bar * 4), self.left, "|]"))
            self.fill = Fraction(0)
        return self.bars


def fitting_share(tune: str) -> tuple[int, int]:
    """(bars that fit, bars) of a whole tune as the tracker reads it (the last may be short)."""
    t = BarTracker()
    t.feed_text(tune)
    bars = t.finish()
    ok = 0
    for i, (length, bar, left, right) in enumerate(bars):
        if bar is None or abs(length - bar) < 1e-9:
            ok += 1
        elif length < bar and (i in (0, len(bars) - 1) or left != PLAIN or right != PLAIN):
            ok += 1
    return ok, len(bars)


class MeterMask:
    """Which characters of a vocabulary may come next, so that every bar can still fit.

    ``mask = MeterMask(itos)(tracker)`` -> bool array (len(itos),). A character is allowed when
    the tracker, fed with it, is still feasible. Masks are memoised on the tracker's state, which
    repeats often (the same fill of the same meter), so a tune costs a few thousand checks at
    most. Entries of ``itos`` longer than one character (``<unk>``) are never allowed. If no
    character is allowed (a state the rules did not foresee), every character is, and
    ``dead_ends`` counts it: the sampler then goes on unconstrained rather than stopping.
    """

    def __init__(self, itos: list[str]):
        self.itos = list(itos)
        self.single = [len(c) == 1 for c in self.itos]
        self.cache: dict[tuple, np.ndarray] = {}
        self.dead_ends = 0

    def __call__(self, tracker: BarTracker) -> np.ndarray:
        key = tracker.key()
        mask = self.cache.get(key)
        if mask is None:
            mask = np.zeros(len(self.itos), dtype=bool)
            for i, c in enumerate(self.itos):
                if self.single[i]:
                    t = tracker.copy()
                    t.feed(c)
                    mask[i] = t.feasible()
            self.cache[key] = mask
        if not mask.any():
            self.dead_ends += 1
            return np.array(self.single)
        return mask
