"""How long work reports its progress: a tqdm bar on a terminal, log lines everywhere else.

A stage's stderr is read two ways. On a terminal a person watches it: a bar with the count
and the time left says how far the work is. Under DVC, a scheduler or a pipe it ends up in a
log file: there a bar's carriage returns are noise, and what is wanted is a few plain lines
that say the same. :class:`Progress` does both from the same calls, deciding by whether its
stream is a terminal.

Two kinds of step are reported. A step worth a line of its own (a training iteration with its
RMSE, a sweep trial with its value) is logged always, and on a terminal printed above the
bar. A step that is only a count (users ranked, bytes received) moves the bar on a terminal
and is logged only a few times (``lines``) over the whole work otherwise.

Lines go through :mod:`logging` (INFO, this module's logger), so library callers and tests
see nothing unless they configure logging; the stages' Hydra config
(``conf/hydra/job_logging/stage.yaml``) sends them to stderr, formatted by
:class:`StageFormatter`.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from typing import IO

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

log = logging.getLogger(__name__)


def is_terminal(stream: IO[str]) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


class Progress:
    """Progress of ``total`` units of work called ``what`` (e.g. ``iteration``, ``trial``).

    ``update(done, message)`` reports that ``done`` units are finished. With ``lines=None``
    every update is a step of its own and is logged as ``what done/total  message``; with
    ``lines=n`` updates are counts and are logged about ``n`` times in all (every 100/n %)
    when ``stream`` (stderr by default) is not a terminal. On a terminal a tqdm bar shows the
    count (``message`` as its postfix when the steps are counts). ``scale`` prints counts in
    binary units (``unit="B"``: 1.5 MB). Use it as a context manager: on a terminal, log
    lines are printed above the bar while it is open. ``enabled=False`` reports nothing.
    """

    def __init__(
        self,
        what: str,
        total: int | None,
        *,
        unit: str = "",
        lines: int | None = None,
        initial: int = 0,
        scale: bool = False,
        stream: IO[str] | None = None,
        enabled: bool = True,
    ) -> None:
        self.what = what
        self.total = total
        self.unit = unit
        self.lines = lines
        self.scale = scale
        self.done = initial
        self.enabled = enabled
        stream = sys.stderr if stream is None else stream
        self.bar: tqdm | None = None
        if enabled and is_terminal(stream):
            self.bar = tqdm(
                total=total,
                initial=initial,
                desc=what,
                unit=f" {unit}" if unit and not scale else unit or "it",  # "5.1 users/s", "2MB/s"
                unit_scale=scale,
                unit_divisor=1024 if scale else 1000,
                file=stream,
                dynamic_ncols=True,
                leave=False,  # the lines (or the stage's summary) say what the bar said
            )
        self._logged_share = self._share(initial)
        self._redirect = contextlib.ExitStack()

    def __enter__(self) -> Progress:
        if self.bar is not None:
            # log lines written to stderr while the bar is drawn would tear it
            self._redirect.enter_context(logging_redirect_tqdm())
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        self._redirect.close()

    def update(self, done: int, message: str = "", *, total: int | None = None) -> None:
        """``done`` units finished so far (``total`` changes the total, e.g. once known)."""
        if not self.enabled:
            return
        if total is not None:
            self.total = total
            if self.bar is not None:
                self.bar.total = total
        if self.bar is not None:
            self.bar.update(done - self.bar.n)
            if message and self.lines is not None:
                self.bar.set_postfix_str(message, refresh=False)
        self.done = done
        suffix = f"  {message}" if message else ""
        if self.lines is None:
            log.info("%s %s%s", self.what, self._count(), suffix)
        elif self.bar is None:
            share = self._share(done)
            if share > self._logged_share:  # the last update of the work is always a new share
                self._logged_share = share
                percent = f"{100 * done / self.total:3.0f}% " if self.total else ""
                log.info("%s %s(%s)%s", self.what, percent, self._count(), suffix)

    def _share(self, done: int) -> int:
        """Which of the ``lines`` equal parts of the work ``done`` has completed."""
        if self.lines is None or not self.total:
            return 0
        return min(self.lines, done * self.lines // self.total)

    def _count(self) -> str:
        if self.scale:
            done = tqdm.format_sizeof(self.done, self.unit, 1024)
            total = "?" if self.total is None else tqdm.format_sizeof(self.total, self.unit, 1024)
            return f"{done}/{total}"
        total = "?" if self.total is None else f"{self.total:,}"
        unit = f" {self.unit}" if self.unit and self.lines is not None else ""
        return f"{self.done:,}/{total}{unit}"


class Step:
    """A step of a stage logged when it is done, with what it produced and its seconds:
    ``with Step("read ratings") as step: ...; step.result = "100,836 ratings"`` logs
    ``read ratings: 100,836 ratings (0.41 s)``. Nothing is logged when the block fails (the
    error says what happened)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.result = ""

    def __enter__(self) -> Step:
        self.started = time.perf_counter()
        return self

    def __exit__(self, exc_type, *exc: object) -> None:
        if exc_type is None:
            seconds = time.perf_counter() - self.started
            result = f": {self.result}" if self.result else ""
            log.info("%s%s (%.2f s)", self.what, result, seconds)


class StageFormatter(logging.Formatter):
    """``[stage] message`` for INFO lines and ``[stage] warning: message`` above them: brief
    lines that still tell a problem from progress (``stage`` is Hydra's job name)."""

    def __init__(self, stage: str) -> None:
        super().__init__(f"[{stage}] %(levelprefix)s%(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.levelprefix = (
            f"{record.levelname.lower()}: " if record.levelno >= logging.WARNING else ""
        )
        return super().formatMessage(record)
