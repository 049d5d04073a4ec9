"""The BLAS thread policy (nnscratch/threads.py): its decisions under a faked load.

No timing here: samples and the clock are fakes, and ``apply`` records what the policy would set.
"""
from __future__ import annotations

import threading

import numpy as np
import pytest

from nnscratch import threads as T
from nnscratch.threads import Sample, ThreadPolicy, decide, others_busy


class FakeMachine:
    """A clock and /proc/stat-like counters: ``run(seconds, others, own)`` advances time with
    ``others`` cores' worth of other processes and ``own`` of ours busy."""

    def __init__(self, load1=0.0, proc_stat=True):
        self.wall, self.busy, self.own, self.load1 = 100.0, 5000.0, 1.0, load1
        self.proc_stat = proc_stat
        self.samples = 0

    def run(self, seconds, others, own=1.0):
        self.wall += seconds
        self.busy += (others + own) * seconds
        self.own += own * seconds

    def clock(self):
        return self.wall

    def sample(self):
        self.samples += 1
        return Sample(self.wall, self.busy if self.proc_stat else None, self.own, self.load1)


def _policy(machine, cores=2, **kwargs):
    applied = []
    p = ThreadPolicy(cores=cores, interval=2.0, sample=machine.sample, apply=applied.append,
                     clock=machine.clock, **kwargs)
    return p, applied


# ----------------------------------------------------------------------------------------------
# The decision
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("others, cores, cap, expected", [
    (0.0, 2, None, 2),    # a quiet machine: every core
    (0.1, 2, None, 2),    # background noise does not take a core
    (0.3, 2, None, 2),    # up to the tolerance
    (0.45, 2, None, 1),   # a process busy half the time: its core is taken
    (0.67, 2, None, 1),   # a busy loop sharing the cores with our two threads
    (1.0, 2, None, 1),    # another training job on one core
    (1.3, 2, None, 1),
    (2.0, 2, None, 1),    # both cores busy: still one thread (never zero)
    (5.0, 2, None, 1),
    (1.5, 4, None, 2),
    (0.0, 8, 3, 3),       # OPENBLAS_NUM_THREADS=3: a cap
    (0.0, 2, 1, 1),
])
def test_decide(others, cores, cap, expected):
    assert decide(others, cores, cap) == expected


def test_others_busy_subtracts_our_own_cpu_time():
    before = Sample(10.0, 100.0, 5.0, 0.0)
    after = Sample(12.0, 103.0, 7.0, 0.0)   # 3 CPU-s busy in 2 s, 2 of them ours
    assert others_busy(before, after) == pytest.approx(0.5)
    # our own threads spinning (busy = own) leave nothing to others, never a negative figure
    assert others_busy(before, Sample(12.0, 103.0, 8.5, 0.0)) == 0.0
    assert others_busy(before, Sample(10.01, 100.0, 5.0, 0.0)) is None  # too short to say


def test_others_busy_falls_back_to_the_load_average_without_proc_stat():
    before = Sample(10.0, None, 5.0, 0.0)
    after = Sample(12.0, None, 6.0, 1.7)  # load 1.7, half a core of it ours
    assert others_busy(before, after) == pytest.approx(1.2)


def test_busy_seconds_reads_only_our_cpus():
    stat = ("cpu  300 0 30 1000 5 0 0 10 0 0\n"
            "cpu0 100 0 10 500 5 0 0 0 0 0\n"
            "cpu1 200 0 20 500 0 0 0 10 0 0\n"
            "intr 1 2 3\n")
    tick = T._TICK
    assert T.busy_seconds({0}, stat) == pytest.approx(110 / tick)
    assert T.busy_seconds({1}, stat) == pytest.approx(230 / tick)  # steal counts as busy
    assert T.busy_seconds(None, stat) == pytest.approx(340 / tick)


# ----------------------------------------------------------------------------------------------
# The policy over time
# ----------------------------------------------------------------------------------------------
def test_a_second_job_takes_a_core_and_gives_it_back():
    m = FakeMachine()
    p, applied = _policy(m)
    m.run(0.5, others=1.0)                 # another job is training beside us
    assert p.update() == 1 and applied == [1]
    m.run(1.0, others=1.0)
    assert p.update() == 1 and applied == [1]   # not re-checked before `interval`
    m.run(1.5, others=1.0)
    assert p.update() == 1 and applied == [1]   # re-checked, same answer: nothing applied
    m.run(2.5, others=0.05)                # it ended
    assert p.update() == 2 and applied == [1, 2]
    assert p.others == pytest.approx(0.05)


def test_two_jobs_of_ours_settle_on_one_thread_each():
    """Each sees the other's CPU time as 'others': both go to 1 thread and stay there."""
    a, b = FakeMachine(), FakeMachine()
    pa, _ = _policy(a)
    pb, _ = _policy(b)
    for _ in range(5):
        # both at 2 threads would fight; at 1 thread each keeps its own core busy
        own_a, own_b = float(pa.threads), float(pb.threads)
        share = min(1.0, 2.0 / (own_a + own_b))
        a.run(2.1, others=own_b * share, own=own_a * share)
        b.run(2.1, others=own_a * share, own=own_b * share)
        pa.update()
        pb.update()
    assert pa.threads == pb.threads == 1


def test_a_foreign_busy_loop_takes_a_core():
    m = FakeMachine()
    p, _ = _policy(m)
    m.run(2.0, others=2 / 3, own=4 / 3)    # one busy loop and our two threads on two cores
    assert p.update() == 1


def test_quiet_machine_keeps_all_cores_and_applies_once():
    m = FakeMachine()
    p, applied = _policy(m, cores=4)
    m.run(0.3, others=0.0)
    assert p.update() == 4 and applied == [4]
    for _ in range(3):
        m.run(2.5, others=0.1)
        p.update()
    assert applied == [4]


def test_force_re_checks_at_once_and_short_windows_are_skipped():
    m = FakeMachine()
    p, applied = _policy(m)
    m.run(0.1, others=1.0)
    assert p.update() == 2 and applied == []   # the first window is too short yet
    m.run(0.2, others=1.0)
    assert p.update() == 1
    m.run(0.2, others=0.0)
    assert p.update(force=True) == 2 and applied == [1, 2]


def test_override_is_fixed_and_samples_nothing(monkeypatch):
    monkeypatch.setenv(T.ENV, "3")
    m = FakeMachine()
    applied = []
    p = ThreadPolicy.from_env(cores=2, sample=m.sample, apply=applied.append, clock=m.clock)
    m.run(10.0, others=2.0)
    assert p.update() == 3 and p.update(force=True) == 3
    assert applied == [3]
    assert p.threads_for(1e12) == 3


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_bad_override_is_a_clear_error(monkeypatch, value):
    monkeypatch.setenv(T.ENV, value)
    with pytest.raises(ValueError, match="NNSCRATCH_THREADS must be a positive integer"):
        ThreadPolicy.from_env(cores=2, sample=FakeMachine().sample, apply=lambda n: None)


def test_the_users_openblas_setting_is_a_cap(monkeypatch):
    monkeypatch.delenv(T.ENV, raising=False)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    m = FakeMachine()
    applied = []
    p = ThreadPolicy.from_env(cores=2, sample=m.sample, apply=applied.append, clock=m.clock)
    m.run(0.5, others=0.0)
    assert p.update() == 1 and applied == [1]
    monkeypatch.setenv("NNSCRATCH_THREADS", "auto")
    monkeypatch.delenv("OPENBLAS_NUM_THREADS")
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    assert T.user_cap() == 4


def test_threads_for_small_work_is_one():
    m = FakeMachine()
    p, _ = _policy(m)
    m.run(0.5, others=0.0)
    p.update()
    assert p.threads == 2
    assert p.threads_for(T.MIN_FLOPS_PER_THREAD * 0.5) == 1
    assert p.threads_for(T.MIN_FLOPS_PER_THREAD * 2) == 2
    assert p.threads_for(1e12) == 2


def test_the_module_policy_follows_the_environment(monkeypatch):
    monkeypatch.setenv(T.ENV, "1")
    try:
        assert T.reset().override == 1
        assert T.update() == 1 and T.current() == 1
    finally:
        monkeypatch.delenv(T.ENV)
        T.reset()


def test_optimizer_step_consults_the_policy(monkeypatch):
    import nnscratch as nn

    calls = []
    monkeypatch.setattr(T, "update", lambda force=False: calls.append(1) or 1)
    layer = nn.Dense(2, 2)
    opt = nn.optim.SGD(layer.parameters(), lr=0.1)
    layer(np.ones((1, 2), np.float32))
    layer.backward(np.ones((1, 2), np.float32))
    opt.step()
    opt.step()
    assert len(calls) == 2


# ----------------------------------------------------------------------------------------------
# parallel_for and limit
# ----------------------------------------------------------------------------------------------
def test_parallel_for_covers_every_item_once_on_several_threads():
    seen, names = [], set()
    lock = threading.Lock()

    def body(worker, lo, hi):
        with lock:
            seen.extend(range(lo, hi))
            names.add((worker, threading.current_thread().name))

    T.parallel_for(body, 10, 3)
    assert sorted(seen) == list(range(10))
    assert {w for w, _ in names} == {0, 1, 2}
    assert (0, threading.current_thread().name) in names  # the caller takes a share
    seen.clear()
    names.clear()
    T.parallel_for(body, 2, 5)  # fewer items than workers: the caller runs them all
    assert sorted(seen) == [0, 1]
    assert names == {(0, threading.current_thread().name)}


def test_parallel_for_re_raises_and_restores_blas_threads():
    before = T.blas.get()

    def body(worker, lo, hi):
        if worker == 1:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        T.parallel_for(body, 4, 2)
    assert T.blas.get() == before


def test_limit_lowers_and_restores():
    before = T.blas.get()
    if before is None:
        pytest.skip("no BLAS library visible to threadpoolctl")
    T.blas.set(2)
    try:
        with T.limit(1):
            assert T.blas.get() == 1
        assert T.blas.get() == 2
    finally:
        T.blas.set(before)


# ----------------------------------------------------------------------------------------------
# The first guess, before any interval was measured
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("load1, runnable, expected", [
    (0.05, 1, 2),    # idle: BLAS's default stands
    (1.2, 1, 1),     # a job has been running for a while
    (0.1, 2, 1),     # another process runnable right now (a job started with ours)
    (0.1, None, 2),  # no /proc/stat
])
def test_first_guess(load1, runnable, expected):
    assert T.first_guess(2, None, load1, runnable) == expected


def test_runnable_now_reads_procs_running():
    assert T.runnable_now("cpu  1 2 3\nprocs_running 3\nprocs_blocked 0\n") == 3
    assert T.runnable_now("cpu  1 2 3\n") is None


def test_a_first_guess_counts_as_applied_until_the_first_check():
    m = FakeMachine()
    p, applied = _policy(m, initial=1)
    assert p.threads == 1
    m.run(0.3, others=1.0)
    assert p.update() == 1 and applied == []   # the guess was right: nothing to change
    m.run(2.5, others=0.0)
    assert p.update() == 2 and applied == [2]
