"""Ctrl-C during training: finish the current step, save, then stop.

A checkpoint written in the middle of an optimizer step would not resume exactly, and one lost
to a KeyboardInterrupt would lose the run. The training loops of the apps therefore turn the
first Ctrl-C into a request that they check between steps; a second Ctrl-C interrupts at once.
"""
from __future__ import annotations

import signal
import sys


class DeferredInterrupt:
    """Installs a SIGINT handler for the duration of a training loop.

    ``requested`` becomes True at the first Ctrl-C; the loop checks it after each ``unit`` (a
    step, a batch), saves and stops. ``restore()`` puts the previous handler back. Outside the
    main thread (where handlers cannot be installed) Ctrl-C keeps its default behaviour.
    """

    def __init__(self, unit: str = "step", saving: str = "a checkpoint"):
        self.requested = False
        self._message = (f"\nCtrl-C: stopping after this {unit} and saving {saving} "
                         "(Ctrl-C again to abort)")
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not in the main thread
            self._previous = None

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print(self._message, file=sys.stderr)

    def restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
