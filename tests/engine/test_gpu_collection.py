"""The gpu tests collect on a machine without the apps' I/O packages, as the lent GPU machines are.

The GPU machines have no mido, soundfile, music21 or librosa (and no network to install them).
A test module that imports one of them at module level is skipped there as a whole (by
tests/conftest.py, with the reason); a module with gpu cases must not need them at import, or
its gpu cases would silently vanish from the GPU pass. So this runs pytest's collection of the
``gpu`` tests twice in subprocesses, once normally and once with those four packages made
unimportable (a meta-path finder raising ModuleNotFoundError for them), and requires both to
succeed and to collect the same gpu tests.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BLOCKED = ("mido", "soundfile", "music21", "librosa")

_RUNNER = textwrap.dedent("""
    import importlib.abc, sys
    BLOCKED = {blocked!r}

    class NotOnTheGpuMachine(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {{name!r}} (blocked)", name=name)
            return None

    if BLOCKED:
        sys.meta_path.insert(0, NotOnTheGpuMachine())
        for name in BLOCKED:
            try:
                __import__(name)
            except ModuleNotFoundError:
                pass
            else:
                raise SystemExit(f"the block failed: {{name}} imported")
    import pytest
    sys.exit(pytest.main(["--collect-only", "-q", "-m", "gpu", "-p", "no:cacheprovider",
                          "-rs", "tests"]))
""")


def _collect(blocked):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    env.pop("NNSCRATCH_DEVICE", None)
    res = subprocess.run([sys.executable, "-c", _RUNNER.format(blocked=blocked)], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=600)
    ids = sorted(line.strip() for line in res.stdout.splitlines()
                 if "::" in line and not line.startswith(("SKIPPED", "ERROR")))
    return res, ids


def test_gpu_tests_collect_without_mido_soundfile_music21_librosa():
    blocked, blocked_ids = _collect(BLOCKED)
    out = blocked.stdout + blocked.stderr
    assert blocked.returncode == 0, f"collection failed without {BLOCKED}:\n{out[-4000:]}"
    assert blocked_ids, "no gpu test collected"
    # the block was real: some app test modules were skipped for it, with the reason
    assert any(f"needs {name}" in out for name in BLOCKED), out[-2000:]

    normal, normal_ids = _collect(())
    assert normal.returncode == 0, (normal.stdout + normal.stderr)[-4000:]
    hidden = sorted(set(normal_ids) - set(blocked_ids))
    assert not hidden, ("gpu tests that a missing app package hides (their modules must import "
                        f"it lazily or inside the test): {hidden}")
    assert blocked_ids == normal_ids


# ----------------------------------------------------------------------------------------------
# NNSCRATCH_DEVICE=gpu really selects the GPU, and a missing GPU fails the gpu cases
# ----------------------------------------------------------------------------------------------
_PROBE = textwrap.dedent("""
    import pytest
    from nnscratch import backend

    @pytest.mark.gpu
    def test_gpu_case():
        assert backend.get_device() == "gpu"
        assert backend.get_array_module(backend.get_rng().normal((2,))) is backend.cupy_module()

    def test_cpu_case():
        assert backend.get_device() == "cpu"
""")

_FAKE_GPU_PLUGIN = textwrap.dedent("""
    import sys
    sys.path.insert(0, {engine!r})
    import fake_cupy
    from nnscratch import backend
    backend._cupy, backend._cupy_checked = fake_cupy.FakeCupy(), True
""")


def _probe(tmp_path, env_extra, fake_gpu):
    (tmp_path / "test_probe.py").write_text(_PROBE)
    args = ["-p", "conftest"]
    if fake_gpu:
        (tmp_path / "fake_gpu_plugin.py").write_text(
            _FAKE_GPU_PLUGIN.format(engine=os.path.join(ROOT, "tests", "engine")))
        args += ["-p", "fake_gpu_plugin"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), ROOT,
                                                      os.path.join(ROOT, "tests")]))
    env.pop("NNSCRATCH_DEVICE", None)
    env.update(env_extra)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                           *args, str(tmp_path / "test_probe.py")], cwd=str(tmp_path), env=env,
                          capture_output=True, text=True, timeout=300)


def test_gpu_cases_run_with_the_gpu_selected(tmp_path):
    res = _probe(tmp_path, {"NNSCRATCH_DEVICE": "gpu"}, fake_gpu=True)
    assert res.returncode == 0 and "2 passed" in res.stdout, res.stdout + res.stderr


def test_without_a_gpu_gpu_cases_skip_or_with_nnscratch_device_gpu_fail(tmp_path):
    from nnscratch import backend

    if backend.gpu_available():
        pytest.skip("a GPU is present: the no-GPU paths cannot be exercised")
    res = _probe(tmp_path, {}, fake_gpu=False)
    assert res.returncode == 0 and "1 passed, 1 skipped" in res.stdout, res.stdout
    res = _probe(tmp_path, {"NNSCRATCH_DEVICE": "gpu"}, fake_gpu=False)
    assert res.returncode != 0 and "NNSCRATCH_DEVICE=gpu but the GPU backend is unusable" in (
        res.stdout), res.stdout
