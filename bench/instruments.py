"""Timers patched into a running sync: its phases, its HTTP requests and every SQL statement.

`Instruments` replaces, for the duration of a `with` block, each function of the sync,
merge, staging and run-record modules (not the per-record normalizers, whose calls are too
many to time one by one), the staging methods, the Clever requester's methods and asyncpg's
query and COPY methods with timed wrappers, and puts the originals back after. Functions
are found by inspection, so renamed or new ones are timed without edits here.

Each timed call records its total time and its self time (total minus the timed calls it
made in the same task). Calls in other tasks overlap with it: pages are fetched ahead and
copied behind the page being normalized, so their time is not subtracted. An await's time
also holds whatever the event loop ran before resuming it: while one task normalizes a page
(pure CPU), a COPY or query awaited in another looks slower than the server took.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import re
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import ModuleType, TracebackType
from typing import Any, Self

import asyncpg

from app.clever.requester import Requester
from app.mirror import merge, staging
from app.sync import cursors, full, incremental, runs

# Where the sync spends its time, in the modules that hold the pipeline.
PHASE_MODULES: tuple[ModuleType, ...] = (full, incremental, merge, staging, runs, cursors)
PHASE_CLASSES: tuple[type, ...] = (staging.Staging, Requester)
SQL_METHODS = (
    "execute",
    "executemany",
    "fetch",
    "fetchrow",
    "fetchval",
    "copy_records_to_table",
    "copy_to_table",
    "copy_from_table",
)
# Arguments worth naming in a label (`_merge_entity(users)`): entity and staging kinds.
_KNOWN_NAMES = frozenset({*staging.ENTITY_KINDS, *staging.LINK_KINDS, "warnings", "deletions"})
_RUN_TABLE = re.compile(r"r[0-9a-f]{32}_")
_SPACES = re.compile(r"\s+")
STATEMENT_CHARS = 110


@dataclass
class Stat:
    calls: int = 0
    seconds: float = 0.0
    self_seconds: float = 0.0


@dataclass
class Timings:
    """Calls, total and self seconds per label."""

    stats: dict[str, Stat] = field(default_factory=dict)

    def add(self, label: str, seconds: float, self_seconds: float) -> None:
        stat = self.stats.setdefault(label, Stat())
        stat.calls += 1
        stat.seconds += seconds
        stat.self_seconds += self_seconds

    def ranked(self, key: Callable[[Stat], float] = lambda s: s.seconds) -> list[tuple[str, Stat]]:
        return sorted(self.stats.items(), key=lambda item: key(item[1]), reverse=True)


@dataclass
class _Frame:
    label: str
    task: asyncio.Task[Any] | None
    children: float = 0.0


_stack: ContextVar[tuple[_Frame, ...]] = ContextVar("bench_timed_stack", default=())


def statement_summary(sql: str) -> str:
    """A statement's text on one line, staging tables named by kind, shortened."""
    text = _SPACES.sub(" ", _RUN_TABLE.sub("", sql)).strip()
    text = text.replace(f"{staging.SCHEMA}.", "staging.")
    return text if len(text) <= STATEMENT_CHARS else text[: STATEMENT_CHARS - 3] + "..."


def _describe(args: tuple[Any, ...]) -> str:
    """The entity or staging kind a call is about (its third argument), if any."""
    if len(args) < 3:
        return ""
    arg = args[2]
    name = arg if isinstance(arg, str) else getattr(arg, "name", getattr(arg, "table", None))
    return f"({name})" if isinstance(name, str) and name in _KNOWN_NAMES else ""


class Instruments:
    """Timings of phases and SQL statements while the block runs (see the module doc)."""

    def __init__(self) -> None:
        self.phases = Timings()
        self.statements = Timings()
        self._patches: list[tuple[object, str, Any]] = []

    def reset(self) -> tuple[Timings, Timings]:
        """Hand over the timings so far and start new ones."""
        taken = (self.phases, self.statements)
        self.phases, self.statements = Timings(), Timings()
        return taken

    def __enter__(self) -> Self:
        for owner, name, function in self._phase_functions():
            label = self._label(owner, name)
            self._patch(owner, name, self._phase_wrapper(function, label))
        for name in SQL_METHODS:
            method = getattr(asyncpg.Connection, name)
            self._patch(asyncpg.Connection, name, self._sql_wrapper(method))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        while self._patches:
            owner, name, original = self._patches.pop()
            setattr(owner, name, original)

    @staticmethod
    def _phase_functions() -> Iterator[tuple[object, str, Callable[..., Any]]]:
        for module in PHASE_MODULES:
            for name, function in vars(module).items():
                if _timeable(function) and function.__module__ == module.__name__:
                    yield module, name, function
        for cls in PHASE_CLASSES:
            for name, function in vars(cls).items():
                if _timeable(function) and not name.startswith("__"):
                    yield cls, name, function

    @staticmethod
    def _label(owner: object, name: str) -> str:
        if isinstance(owner, ModuleType):
            return f"{owner.__name__.rsplit('.', 1)[-1]}.{name}"
        return f"{getattr(owner, '__name__', owner)}.{name}"

    def _patch(self, owner: object, name: str, replacement: Any) -> None:
        self._patches.append((owner, name, getattr(owner, name)))
        setattr(owner, name, replacement)

    def _phase_wrapper(self, function: Callable[..., Any], label: str) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def timed(*args: Any, **kwargs: Any) -> Any:
                with self._measure(self.phases, label + _describe(args)):
                    return await function(*args, **kwargs)

            return timed

        @functools.wraps(function)
        def timed_sync(*args: Any, **kwargs: Any) -> Any:
            with self._measure(self.phases, label + _describe(args)):
                return function(*args, **kwargs)

        return timed_sync

    def _sql_wrapper(self, method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        async def timed(connection: Any, first: Any, *args: Any, **kwargs: Any) -> Any:
            if method.__name__.startswith("copy_"):
                what = f"{method.__name__} {statement_summary(str(first))}"
            else:
                what = statement_summary(str(first))
            frames = _stack.get()
            label = f"{frames[-1].label if frames else '-'} | {what}"
            with self._measure(self.statements, label):
                return await method(connection, first, *args, **kwargs)

        return timed

    @contextlib.contextmanager
    def _measure(self, timings: Timings, label: str) -> Iterator[None]:
        parents = _stack.get()
        frame = _Frame(label, _current_task())
        token = _stack.set((*parents, frame))
        started = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - started
            _stack.reset(token)
            timings.add(label, elapsed, elapsed - frame.children)
            if parents and parents[-1].task is frame.task:
                parents[-1].children += elapsed


def _timeable(function: object) -> bool:
    """A function whose calls are worth timing (not a generator: its call returns at once)."""
    return (
        inspect.isfunction(function)
        and not inspect.isgeneratorfunction(function)
        and not inspect.isasyncgenfunction(function)
    )


def _current_task() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:  # no event loop: called from plain code
        return None
