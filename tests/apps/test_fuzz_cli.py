"""Fuzzing the argument handling of every entry script (issue 22).

1. Every subcommand of every ``apps/*.py`` with a ``main()``: random argument lists (real
   options, abbreviations, unknown options, odd values: '', '\\', '-1', 'nan', '1e309', text,
   paths) go through ``main()`` with the command itself replaced, so only the parsing runs.
   Contract: argparse accepts them, or exits with code 2 and an ``error:`` line; ``--help``
   exits 0; never a traceback.
2. The commands that read a user's file or folder, run for real on mutated and foreign inputs,
   with the one heavy step (training, the feature pass over FSDD, writing the MIDI/SVG/WAV of
   samples) replaced by a stub that stops there: ``abc_lstm.py prepare / train / run / sample``,
   ``spoken_digits.py predict / evaluate / train / speakers``. Contract: exit code 0 or 2 with
   an ``error:`` line, never a traceback, the files given unchanged, and an output folder that
   did not exist is still absent after an error.
3. Commands of the other apps given missing, foreign or damaged files: one error line each.
4. Every entry script's ``main()`` ends in ``apps.common.cli.run_command``.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
import warnings

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzzing import (
    DATA,
    abc_checkpoint,
    abc_seeds,
    budgets,
    digits_checkpoint,
    fuzz_settings,
    jsonl_seed,
    mutated,
    read,
    snapshot,
    wav_seeds,
)

APPS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                    "apps")
ENTRY_SCRIPTS = sorted(
    name[:-3] for name in os.listdir(APPS)
    if name.endswith(".py") and name != "__init__.py"
    and "\ndef main(" in open(os.path.join(APPS, name), encoding="utf-8").read())


_LAST_ERR = [""]


XFAIL_IMPORT: dict = {}  # script -> reason, for an entry script that does not import


class Reached(Exception):
    """Raised by the stub standing in for a command's heavy work: the arguments got through."""


def _stop(*args, **kwargs):
    raise Reached


# ----------------------------------------------------------------------------------------------
# Argument lists
# ----------------------------------------------------------------------------------------------
ODD = ["", " ", "\\", "\\n", "-", "--", "-1", "-3", "0", "1", "2", "3", "0.5", "1e-320", "nan",
       "inf", "-inf", "1e309", "abc", "1,2", ",", "0,0", "2,-1", "é€", "\udcff", "missing.npz",
       "runs", ".", "/", "/proc/x", "x" * 300]
HUGE = ["99999999999999999999", "2147483648", "1000000"]
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
               max_size=8)


def commands(parser: argparse.ArgumentParser) -> dict:
    """{subcommand: its parser}, or {None: parser} for a script without subcommands."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {None: parser}


def _count(draw, nargs) -> int:
    if nargs is None:
        return 1
    if isinstance(nargs, int):
        return nargs
    return draw(st.integers({"?": 0, "*": 0, "+": 1}.get(nargs, 0), 3 if nargs != "?" else 1))


def value(action, small: bool):
    """Odd values; for a command that runs (``small``), plausible ones half the time and no
    huge numbers (a large valid size is work, not an error)."""
    odd = st.one_of(st.sampled_from(ODD if small else ODD + HUGE), TEXT,
                    st.integers(-3, 300).map(str))
    plausible = st.sampled_from([str(c) for c in action.choices] if action.choices
                                else ["1", "2", "3", "0.5", "0.1", "8"])
    if small:
        return st.one_of(plausible, odd)
    return st.one_of(odd, plausible) if action.choices else odd


@st.composite
def argv_for(draw, name, parser, small=False, fixed=(), skip=(), max_options=5):
    """An argument list for one subcommand: some of its options (sometimes abbreviated, every
    required one most of the time) with odd values, its positionals, sometimes an unknown
    option or --help. ``fixed`` is appended as is; options named in ``skip`` are not drawn."""
    acts = [a for a in parser._actions if not isinstance(a, argparse._HelpAction)
            and not set(a.option_strings) & set(skip) and a.dest not in skip]
    optional = [a for a in acts if a.option_strings]
    argv = [] if name is None else [name]
    chosen = draw(st.lists(st.sampled_from(optional), max_size=max_options)) if optional else []
    chosen += [a for a in optional if a.required and draw(st.integers(0, 9)) > 0]
    for a in chosen:
        opt = draw(st.sampled_from(a.option_strings))
        if opt.startswith("--") and len(opt) > 5 and draw(st.integers(0, 5)) == 0:
            opt = opt[:draw(st.integers(4, len(opt)))]  # argparse accepts unique prefixes
        argv.append(opt)
        nargs = 0 if isinstance(a, (argparse._StoreConstAction, argparse._StoreTrueAction,
                                    argparse._StoreFalseAction, argparse._CountAction,
                                    argparse.BooleanOptionalAction)) else a.nargs
        argv += [draw(value(a, small)) for _ in range(_count(draw, nargs))]
    for a in acts:
        if not a.option_strings:
            argv += [draw(value(a, small)) for _ in range(_count(draw, a.nargs))]
    extra = draw(st.integers(0, 39 if small else 19))
    if extra == 0:
        argv.append("--help")
    elif extra == 1:
        argv.append(draw(st.sampled_from(["--bogus", "-x", "--no-such-option=1"])))
    return argv + list(fixed)


def _run(main, argv, capsys) -> tuple[int, str]:
    """main(argv) -> (exit code, stderr); argparse's SystemExit is an exit code too."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rc = main(argv)
    except SystemExit as exc:
        rc = exc.code
    err = capsys.readouterr().err
    _LAST_ERR[0] = err
    assert "Traceback" not in err
    assert rc in (0, 2, None), (rc, err)
    if rc == 2:
        assert "error: " in err, err
    return rc or 0, err


# ----------------------------------------------------------------------------------------------
# 1. Parsing, every subcommand of every script
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("script", ENTRY_SCRIPTS)
@budgets(ci=80, slow=2000)
def test_every_subcommand_parses_or_refuses_its_arguments(script, budget, monkeypatch, capsys,
                                                          tmp_path, request):
    if script in XFAIL_IMPORT:
        request.applymarker(pytest.mark.xfail(strict=True, reason=XFAIL_IMPORT[script]))
    module = importlib.import_module(f"apps.{script}")
    monkeypatch.chdir(tmp_path)
    parser = module.build_parser()
    subs = commands(parser)
    called = []
    if hasattr(module, "run_command"):  # the command itself never runs: only the parsing
        monkeypatch.setattr(module, "run_command", lambda fn, *a, **k: called.append(fn) or 0)
        main = module.main
    else:  # a script that calls its commands itself: its parser alone
        def main(argv):
            parser.parse_args(argv)
            return 0

    @fuzz_settings(budget)
    @given(data=st.data())
    def check(data):
        name = data.draw(st.sampled_from(sorted(subs, key=str)))
        argv = data.draw(argv_for(name, subs[name]))
        _run(main, argv, capsys)

    check()
    assert os.listdir(tmp_path) == []  # parsing alone writes nothing


# ----------------------------------------------------------------------------------------------
# 2. The commands of the ABC app and of the spoken-digit classifier, on damaged inputs
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Input files and folders to hand to the commands: good, damaged and foreign ones."""
    root = tmp_path_factory.mktemp("inputs")
    abc = root / "two.abc"
    abc.write_bytes(b"\n".join(abc_seeds()[:2]))
    (root / "tunes.jsonl").write_bytes(jsonl_seed(3))
    (root / "empty_folder").mkdir()
    (root / "notes.txt").write_text("not what was asked for")
    (root / "wavs").mkdir()
    return {
        "root": str(root),
        "abc": str(abc), "jsonl": str(root / "tunes.jsonl"),
        "abc_ckpt": abc_checkpoint(str(root / "abc_best.npz")),
        "digits_ckpt": digits_checkpoint(str(root / "digits_model.npz")),
        "folder": str(root / "empty_folder"), "text": str(root / "notes.txt"),
        "missing": str(root / "missing"),
        "wavs": wav_seeds(str(root / "wavs")),
        "wav": os.path.join(DATA, "fsdd", "recordings", "7_jackson_32.wav"),
    }


@st.composite
def a_file(draw, inputs, kinds, mutate=(), name="input"):
    """The path of one input: a named kind from ``inputs``, or a mutation of one of the byte
    seeds in ``mutate`` written to a fresh folder."""
    choices = list(kinds) + (["mutated"] if mutate else [])
    kind = draw(st.sampled_from(choices))
    if kind != "mutated":
        return inputs[kind]
    data = draw(mutated(mutate))
    path = os.path.join(tempfile.mkdtemp(dir=inputs["root"]), name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def _check_command(main, argv, given_paths, out, capsys):
    """Run a command: an exit code of 0 or 2 (with its error line), no traceback, the given
    files unchanged, no output folder made by a command that failed."""
    before = snapshot(*[p for p in given_paths if os.path.exists(p)])
    try:
        rc, _ = _run(main, argv, capsys)
    except Reached:
        rc = "reached"
    assert snapshot(*[p for p in given_paths if os.path.exists(p)]) == before
    if os.environ.get("FUZZ_STATS"):
        print("OUTCOME", rc, argv[:1], _LAST_ERR[0][-100:].strip().replace("\n", " | "),
              file=sys.__stderr__, flush=True)
    if rc == 2 and out is not None:
        assert not os.path.exists(out), f"{out} left behind by a failed command"
    return rc


@budgets(ci=60, slow=1500)
def test_abc_prepare_on_damaged_data_and_odd_destinations(inputs, budget, capsys, tmp_path):
    from apps import abc_lstm

    seeds = [read(inputs["abc"]), read(inputs["jsonl"])]

    @fuzz_settings(budget)
    @given(data=st.data())
    def check(data):
        src = data.draw(a_file(inputs, ["abc", "jsonl", "folder", "text", "missing", "wav"],
                               seeds, name=data.draw(st.sampled_from(["t.abc", "t.jsonl"]))))
        fresh = os.path.join(tempfile.mkdtemp(dir=tmp_path), "prepared")
        out = data.draw(st.sampled_from([fresh, inputs["text"], inputs["text"] + "/sub",
                                         "/proc/no_such_folder", inputs["wav"]]))
        _check_command(abc_lstm.main, ["prepare", "--data", src, "--out", out],
                       [src, inputs["text"], inputs["wav"]], out if out == fresh else None,
                       capsys)

    check()


@budgets(ci=60, slow=1500)
def test_abc_sample_on_damaged_checkpoints_and_odd_arguments(inputs, budget, capsys, tmp_path,
                                                             monkeypatch):
    from apps import abc_lstm
    from apps.abc_tunes import sample as sample_mod

    monkeypatch.setattr(sample_mod, "publish_tunes", lambda tunes, out, **k: {})
    parser = commands(abc_lstm.build_parser())["sample"]
    ckpts = ["abc_ckpt", "digits_ckpt", "folder", "text", "missing"]

    @fuzz_settings(budget)
    @given(data=st.data())
    def check(data):
        ckpt = data.draw(a_file(inputs, ckpts, [read(inputs["abc_ckpt"])], name="best.npz"))
        out = os.path.join(tempfile.mkdtemp(dir=tmp_path), "samples")
        argv = data.draw(argv_for("sample", parser, small=True, max_options=2,
                                  skip=("--checkpoint", "--out", "--n", "--max-chars"),
                                  fixed=["--checkpoint", ckpt, "--out", out, "--max-chars",
                                         "40", "--n", data.draw(st.sampled_from(["1", "2"]))]))
        _check_command(abc_lstm.main, argv, [ckpt], out, capsys)

    check()


@budgets(ci=60, slow=1500)
def test_abc_train_and_run_stop_before_training_or_refuse(inputs, budget, capsys, tmp_path,
                                                          monkeypatch):
    """Everything up to the first training step runs for real: preparation of --data, reading
    --data-dir, --resume's checkpoint, the model and the sampler; the loop is a stub."""
    from apps import abc_lstm
    from apps.abc_tunes import train as train_mod

    monkeypatch.setattr(train_mod.Trainer, "run", _stop)
    monkeypatch.chdir(tmp_path)
    subs = commands(abc_lstm.build_parser())
    seeds = [read(inputs["abc"]), read(inputs["jsonl"])]
    sizes = ("--embedding", "--hidden", "--layers", "--batch", "--seq")

    @fuzz_settings(budget)
    @given(data=st.data())
    def check(data):
        name = data.draw(st.sampled_from(["train", "run"]))
        src = data.draw(a_file(inputs, ["abc", "jsonl", "folder", "text", "missing"], seeds,
                               name=data.draw(st.sampled_from(["t.abc", "t.jsonl"]))))
        out = os.path.join(tempfile.mkdtemp(dir=tmp_path), "run")
        fixed = ["--data", src, "--out", out, "--quiet", "--layers", "1", "--hidden", "8",
                 "--embedding", "4", "--batch", "2", "--seq",
                 data.draw(st.sampled_from(["8", "16", "100000"]))]
        given_paths = [src]
        which = data.draw(st.sampled_from(["none", "resume", "data-dir"]))
        if which == "resume":
            # a foreign app's checkpoint is left out here: test_abc_resume_from_a_foreign_...
            ckpt = data.draw(a_file(inputs, ["abc_ckpt", "text", "missing"],
                                    [read(inputs["abc_ckpt"])], name="last.npz"))
            fixed += ["--resume", ckpt]
            given_paths.append(ckpt)
        elif which == "data-dir":
            fixed += ["--data-dir", data.draw(st.sampled_from([inputs["folder"], src,
                                                               inputs["missing"]]))]
        argv = data.draw(argv_for(name, subs[name], small=True, max_options=2, fixed=fixed,
                                  skip=("--data", "--out", "--resume", "--data-dir", *sizes)))
        _check_command(abc_lstm.main, argv, given_paths, None, capsys)

    check()


@budgets(ci=50, slow=1500)
def test_digits_predict_on_damaged_recordings_and_checkpoints(inputs, budget, capsys, tmp_path):
    from apps import spoken_digits

    parser = commands(spoken_digits.build_parser())["predict"]

    @fuzz_settings(budget)
    @given(data=st.data())
    def check(data):
        files = data.draw(st.lists(a_file(inputs, ["wav", "text", "folder", "missing"],
                                          inputs["wavs"], name="clip.wav"),
                                   min_size=1, max_size=3))
        ckpt = data.draw(a_file(inputs, ["digits_ckpt", "abc_ckpt", "text", "missing"],
                                [read(inputs["digits_ckpt"])], name="model.npz"))
        argv = data.draw(argv_for("predict", parser, small=True, max_options=2,
                                  skip=("files", "--checkpoint"),
                                  fixed=[*files, "--checkpoint", ckpt]))
        _check_command(spoken_digits.main, argv, [*files, ckpt], None, capsys)

    check()


@budgets(ci=60, slow=1500)
def test_digits_train_and_evaluate_stop_before_the_features_or_refuse(inputs, budget, capsys,
                                                                      tmp_path, monkeypatch):
    """--limit, --split, --cv, --data, --out and the checkpoint are checked for real; the
    feature pass over FSDD (and so training) is a stub."""
    from apps import spoken_digits
    from apps.digits import evaluate as evaluate_mod
    from apps.digits import train as train_mod

    monkeypatch.setattr(train_mod, "load_dataset", _stop)
    monkeypatch.setattr(evaluate_mod, "load_dataset", _stop)
    monkeypatch.chdir(tmp_path)
    subs = commands(spoken_digits.build_parser())

    @fuzz_settings(budget)
    @given(data=st.data())
    def check(data):
        name = data.draw(st.sampled_from(["train", "speakers", "evaluate"]))
        out = os.path.join(tempfile.mkdtemp(dir=tmp_path), "run")
        fixed = ["--out", out, "--no-progress"]
        given_paths = []
        if name == "evaluate":
            ckpt = data.draw(a_file(inputs, ["digits_ckpt", "abc_ckpt", "text", "missing"],
                                    [read(inputs["digits_ckpt"])], name="model.npz"))
            fixed.append(ckpt)
            given_paths.append(ckpt)
        if data.draw(st.booleans()):
            fixed += ["--data", data.draw(st.sampled_from([inputs["folder"], inputs["text"],
                                                           inputs["missing"]]))]
        argv = data.draw(argv_for(name, subs[name], small=True, max_options=2, fixed=fixed,
                                  skip=("--out", "checkpoint", "--data")))
        _check_command(spoken_digits.main, argv, given_paths, out, capsys)

    check()


def test_abc_resume_from_a_foreign_checkpoint_is_one_error_line(inputs, capsys, tmp_path,
                                                                monkeypatch):
    from apps import abc_lstm
    from apps.abc_tunes import train as train_mod

    monkeypatch.setattr(train_mod.Trainer, "run", _stop)
    rc = _check_command(abc_lstm.main, ["train", "--resume", inputs["digits_ckpt"], "--out",
                                        str(tmp_path / "run")], [inputs["digits_ckpt"]],
                        str(tmp_path / "run"), capsys)
    assert rc == 2


# ----------------------------------------------------------------------------------------------
# 3. The other apps' commands, given a missing, foreign or damaged file
# ----------------------------------------------------------------------------------------------
FILE_CASES = {
    "melody_lstm generate": ["generate", "--checkpoint", "{F}", "--out", "{OUT}/m.mid"],
    "melody_vae sample": ["sample", "--run", "{F}", "--out", "{OUT}"],
    "melody_vae interpolate": ["interpolate", "--run", "{F}", "--out", "{OUT}"],
    "next_note_mlp generate": ["generate", "--checkpoint", "{F}", "--out", "{OUT}/n.mid"],
    "voice_vae reconstruct": ["reconstruct", "{WAV}", "--checkpoint", "{F}", "--out", "{OUT}"],
    "voice_vae sample": ["sample", "--checkpoint", "{F}", "--out", "{OUT}"],
    "voice_vae interpolate": ["interpolate", "{WAV}", "{WAV}", "--checkpoint", "{F}", "--out",
                              "{OUT}"],
    "voice_vae generate": ["generate", "--digit", "7", "--checkpoint", "{F}", "--out", "{OUT}"],
    "voice_vae interpolate voices": ["interpolate", "--speakers", "theo", "lucas", "--digit", "7",
                                     "--checkpoint", "{F}", "--out", "{OUT}"],
    "drum_accompaniment accompany": ["accompany", "{MID}", "--checkpoint", "{F}", "--out",
                                     "{OUT}/d.mid"],
    "drum_accompaniment evaluate": ["evaluate", "--checkpoint", "{F}", "--out", "{OUT}/e.json"],
    "mlp_demo --out": ["--out", "{F}/run", "--epochs", "1"],  # a file where a folder goes
}
FILE_KINDS = ["missing", "text", "folder", "abc_ckpt", "digits_ckpt", "truncated"]
ONLY_FILES = {"mlp_demo --out"}  # a missing or empty folder is a fine place for a run
XFAIL_FILES: dict = {}  # (case, kind or None) -> reason, for a failure not fixed yet


@pytest.mark.parametrize("case,kind", [(c, k) for c in sorted(FILE_CASES) for k in FILE_KINDS
                                       if c not in ONLY_FILES or k not in ("missing", "folder")])
def test_other_apps_refuse_a_missing_foreign_or_damaged_file(case, kind, inputs, capsys,
                                                             tmp_path, monkeypatch, request):
    if (case, kind) in XFAIL_FILES or (case, None) in XFAIL_FILES:
        request.applymarker(pytest.mark.xfail(
            strict=True, reason=XFAIL_FILES.get((case, kind)) or XFAIL_FILES[(case, None)]))
    script = case.split()[0]
    module = importlib.import_module(f"apps.{script}")
    monkeypatch.chdir(tmp_path)
    if kind == "truncated":
        path = str(tmp_path / "truncated.npz")
        with open(path, "wb") as f:
            f.write(read(inputs["abc_ckpt"])[:3000])
    else:
        path = inputs[kind]
    out = str(tmp_path / "out")
    mid = os.path.join(DATA, "cre-irish-midi", "midi", "BerriesontheBushpolka.mid")
    argv = [a.format(F=path, OUT=out, WAV=inputs["wav"], MID=mid) for a in FILE_CASES[case]]
    rc = _check_command(module.main, argv, [path, inputs["wav"], mid], None, capsys)
    assert rc == 2


# ----------------------------------------------------------------------------------------------
# 4. One place turns documented errors into "error: ..." and exit code 2
# ----------------------------------------------------------------------------------------------
XFAIL_MAIN: dict = {}  # script -> reason


@pytest.mark.parametrize("script", ENTRY_SCRIPTS)
def test_main_ends_in_run_command_and_catches_nothing_itself(script, request):
    if script in XFAIL_MAIN:
        request.applymarker(pytest.mark.xfail(strict=True, reason=XFAIL_MAIN[script]))
    import ast

    tree = ast.parse(open(os.path.join(APPS, f"{script}.py"), encoding="utf-8").read())
    main = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main")
    last = main.body[-1]
    assert isinstance(last, ast.Return) and isinstance(last.value, ast.Call)
    assert getattr(last.value.func, "id", None) == "run_command"
    assert not [n for n in ast.walk(main) if isinstance(n, ast.ExceptHandler)], \
        f"apps/{script}.py: main() keeps its own list of exception types"
