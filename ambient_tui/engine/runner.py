"""The async runner: executes a plan's steps, emits events, writes the journal.

Each command runs in its own session (process group) so cancelling or timing out a step ends
helm and every child it started; nothing is left behind as an orphan. A child that moved to a
session of its own is found by its parent links and signalled by its own group and pid too.

With a `lock` (cluster/lease.py ClusterLock), run() holds the cluster lock from before its
first step to its end, and stops at the next step boundary when the lock was lost. Before the
first step it refuses while a process an earlier run recorded (a step's pid, in the
`step-pid` record after its step-start) is still alive, so a restart never works on a
release that an orphaned helm is still changing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from typing import Awaitable, Callable, Iterable

from ambient_tui.engine import procs
from ambient_tui.engine.events import Cause, Event, EventKind
from ambient_tui.engine.journal import Journal, JournalError, JournalRead
from ambient_tui.engine.plan import Plan, Step, StepState
from ambient_tui.engine.redact import redact_argv
from ambient_tui.tools.install_hints import missing_tool_message

KILL_GRACE = 3.0  # seconds between SIGTERM and SIGKILL of a step's process group
INTERRUPT_SIGNALS = (signal.SIGHUP, signal.SIGTERM, signal.SIGINT)


class LeftoverProcess(RuntimeError):
    """A process an earlier run started is still alive; the message is the line to show."""

# Watches what a running step waits for: `await watcher(step, report)` runs beside the step
# (cancelled when it ends) and calls report(cause) as it learns why the wait is stuck. A
# permanent cause ends the step early, failed with that cause (watch/diagnose.py makes one).
StepWatcher = Callable[[Step, Callable[[Cause], None]], Awaitable[None]]


class Runner:
    def __init__(self, plan: Plan, journal: Journal | None = None, dry_run: bool = False,
                 env: dict | None = None, lock=None, step_watcher: StepWatcher | None = None) -> None:
        self.plan = plan
        self.lock = lock  # a ClusterLock (or None: no cluster lock, e.g. tests of local commands)
        self._depth = 0  # run() inside _locked(): its run_step() calls pass straight through
        self.step_watcher = step_watcher
        self._diagnosed: dict[str, Cause] = {}  # step -> the permanent cause that ended it
        self.journal = journal
        self.dry_run = dry_run
        self.env = env
        self._subscribers: list[Callable[[Event], None]] = []
        self._procs: dict[str, asyncio.subprocess.Process] = {}
        self._tasks: dict[str, asyncio.Task] = {}
        self._cancelled: set[str] = set()
        self._dry_skipped: set[str] = set()
        self._plan_written = False
        # Why the run was interrupted (e.g. "interrupted by SIGHUP"), journaled on cancelled steps.
        self.interrupted: str | None = None
        # The journal could not be written (disk full...): the run stops at the next step
        # boundary, and the front end says this and what to do.
        self.journal_error: JournalError | None = None
        # Steps an earlier run finished (resume_from): journaled in this run too, so a later
        # continuation of this run still knows they are done. step id -> (state, run id).
        self._carried: dict[str, tuple[str, str]] = {}

    # -- events -----------------------------------------------------------------------------
    def subscribe(self, callback: Callable[[Event], None]) -> None:
        self._subscribers.append(callback)

    def _emit(self, event: Event) -> None:
        if event.kind is EventKind.OUTPUT and self.journal:
            self.journal.output(event.step_id, event.line)
        for cb in self._subscribers:
            cb(event)

    # -- control ----------------------------------------------------------------------------
    def skip(self, step_id: str, reason: str) -> None:
        step = self.plan.step(step_id)
        if step.state is StepState.RUNNING:
            raise RuntimeError(f"step {step_id} is running; cancel it first")
        step.state, step.skip_reason = StepState.SKIPPED, reason
        self._carried.pop(step_id, None)
        self._write_journal(self._journal_skip, step, reason)
        self._emit(Event(EventKind.FINISHED, step_id, state=step.state.value, message=f"skipped: {reason}"))

    def cancel(self) -> None:
        """Cancel every running step: its process group gets SIGTERM, then SIGKILL."""
        for step_id, task in list(self._tasks.items()):
            self._cancelled.add(step_id)
            proc = self._procs.get(step_id)
            if proc is not None:
                # SIGTERM, then SIGKILL after a grace period: a child that ignores TERM
                # would otherwise hold the output pipe open for ever.
                asyncio.ensure_future(_kill_group(proc))
            else:
                task.cancel()

    def _on_cause(self, step: Step, cause: Cause) -> None:
        """A step watcher's report: show it; a permanent cause ends the step's wait now."""
        if step.state is not StepState.RUNNING or step.id in self._diagnosed:
            return
        if self.journal:
            self.journal.output(step.id, f"cause: {cause.text()}")
        self._emit(Event(EventKind.CAUSE, step.id, message=cause.text(), line=cause.fix, cause=cause))
        if cause.permanent:
            self._diagnosed[step.id] = cause
            proc = self._procs.get(step.id)
            if proc is not None:
                asyncio.ensure_future(_kill_group(proc))  # helm gets SIGTERM: it marks the release failed
            elif step.id in self._tasks:
                self._tasks[step.id].cancel()

    def interrupt(self, reason: str) -> None:
        """Stop the run: cancel running steps (journaled with `reason`) and start no more."""
        self.interrupted = reason
        self.cancel()

    @property
    def busy(self) -> bool:
        """A step is running (or its process group is still being ended)."""
        return bool(self._tasks)

    async def run_interruptible(self, resume: bool = False,
                                signals: tuple[int, ...] = (signal.SIGHUP, signal.SIGTERM)) -> bool:
        """run(), but SIGHUP/SIGTERM (a dropped SSH session, a kill) cancel the running step
        cleanly: its process group is ended and the journal records why, instead of the app
        dying and leaving helm orphaned mid-operation."""
        loop = asyncio.get_running_loop()
        installed = []
        for sig in signals:
            try:
                loop.add_signal_handler(sig, self.interrupt, f"interrupted by {signal.Signals(sig).name}")
                installed.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
                pass
        try:
            return await self.run(resume=resume)
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    async def retry(self, step_id: str) -> StepState:
        self.plan.step(step_id).state = StepState.PENDING
        return await self.run_step(step_id)

    def resume_from(self, previous: JournalRead) -> list[str]:
        """Mark steps the journal saw finish as done; returns their ids. They are journaled
        as carried over when this run writes its plan."""
        runs: dict[str, str] = {}
        for r in previous.records:
            if r.get("type") in ("step-start", "step-end", "step-skip") and isinstance(r.get("step"), str):
                runs[r["step"]] = str(r.get("from_run") or r.get("run") or "")
        done = []
        for step_id, state in previous.step_states().items():
            try:
                step = self.plan.step(step_id)
                st = StepState(state)
            except (KeyError, ValueError):
                continue
            if st.done:
                step.state = st
                self._carried[step_id] = (st.value, runs.get(step_id, ""))
                done.append(step_id)
        return done

    # -- journal ----------------------------------------------------------------------------
    def _write_journal(self, fn, *args, **kw) -> bool:
        """Write through the journal; on failure stop the run at the next step boundary."""
        if not self.journal:
            return True
        try:
            fn(*args, **kw)
            return True
        except JournalError as e:
            if self.journal_error is None:
                self.journal_error = e
            self.interrupted = self.interrupted or f"stopped: {e}"
            return False

    def _journal_skip(self, step: Step, reason: str) -> None:
        self.journal.step_skip(step, reason)

    def _journal_plan(self) -> None:
        self.journal.plan(self.plan, dry_run=self.dry_run)
        self._plan_written = True
        for step_id, (state, run) in list(self._carried.items()):
            step = self.plan.step(step_id)
            if step.state.value == state:  # still done (not reset by a retry)
                self.journal.step_skip(step, f"already done in run {run}" if run else "already done",
                                       state=state, from_run=run or None)
        self._carried.clear()

    # -- running ----------------------------------------------------------------------------
    async def run(self, resume: bool = False) -> bool:
        """Run every pending step in order; steps of one phase sharing a group run together.
        Raises LockHeld/LockError (another run holds the cluster) or LeftoverProcess before
        the first step; nothing has changed then."""
        async with self._locked():
            return await self._run(resume)

    async def _run(self, resume: bool) -> bool:
        if self.journal_error is not None:  # a new run tries the journal again (space freed?)
            if self.interrupted == f"stopped: {self.journal_error}":
                self.interrupted = None
            self.journal_error = None
        if resume and self.journal:
            self.resume_from(Journal.read(self.journal.path))
        if not self.dry_run:
            for step_id in self._dry_skipped:
                self.plan.step(step_id).state = StepState.PENDING
            self._dry_skipped.clear()
        for phase in self.plan.phases:
            for batch in _batches(phase.steps):
                if self.interrupted:
                    return False
                if self.lock is not None and self.lock.lost:
                    self.interrupt(f"stopped: {self.lock.lost}")
                    return False
                todo = [s for s in batch if s.state in (StepState.PENDING, StepState.FAILED,
                                                        StepState.CANCELLED)]
                if not todo:
                    continue
                states = await asyncio.gather(*(self.run_step(s.id) for s in todo))
                if not all(st.done for st in states):
                    return False
        return all(s.state.done for s in self.plan.steps)

    async def run_step(self, step_id: str) -> StepState:
        async with self._locked():
            return await self._run_step(step_id)

    @contextlib.asynccontextmanager
    async def _locked(self):
        """Around a run (not a dry run; once, though run() calls run_step()): refuse while an
        earlier run's process lives, and hold the cluster lock when there is one."""
        if self.dry_run or self._depth:
            yield
            return
        self._depth += 1
        try:
            if self.journal is not None:
                read = await asyncio.to_thread(Journal.read, self.journal.path)
                self.check_leftovers(read)
            lock = self.lock
            if lock is None or lock.held:
                yield
                return
            loop = asyncio.get_running_loop()
            await asyncio.to_thread(lock.acquire, lambda line: loop.call_soon_threadsafe(self._say, line))
            try:
                yield
            finally:
                await asyncio.to_thread(lock.release)
        finally:
            self._depth -= 1

    def _say(self, line: str) -> None:
        """A line about the run as a whole (waiting for the lock): shown on the first step."""
        first = next((s for s in self.plan.steps if s.state is StepState.PENDING), None)
        if first is not None:
            self._emit(Event(EventKind.OUTPUT, first.id, line=f"! {line}"))

    def check_leftovers(self, journal: JournalRead) -> None:
        """Refuse while a process an earlier run recorded (step-pid) still runs."""
        for step, pid, argv in live_recorded(journal, self.journal.run_id if self.journal else None):
            raise LeftoverProcess(
                f"{os.path.basename(argv[0]) if argv else 'a process'} (pid {pid}) started by step "
                f"{step} of an earlier run is still running; wait for it to end or stop it "
                f"(kill {pid}), then run again; nothing was changed")

    async def _run_step(self, step_id: str) -> StepState:
        step = self.plan.step(step_id)
        if self.journal and not self._plan_written and not self._write_journal(self._journal_plan):
            return step.state  # nothing ran: the journal cannot record it
        task = asyncio.ensure_future(self._execute(step))
        self._tasks[step_id] = task
        try:
            return await task
        finally:
            self._tasks.pop(step_id, None)

    async def _execute(self, step: Step) -> StepState:
        started = time.time()
        self._cancelled.discard(step.id)
        if not self._write_journal(self.journal.step_start if self.journal else None, step,
                                   dry_run=self.dry_run):
            return step.state  # not started: a change the journal cannot record is not made
        step.state = StepState.RUNNING
        self._emit(Event(EventKind.STARTED, step.id, state=step.state.value, line=step.command))
        exit_code: int | None = None
        message = ""
        self._diagnosed.pop(step.id, None)
        watch = None
        if self.step_watcher is not None and not self.dry_run:
            watch = asyncio.ensure_future(self.step_watcher(step, lambda c: self._on_cause(step, c)))
        try:
            if self.dry_run:
                self._emit(Event(EventKind.OUTPUT, step.id, line=f"dry-run: would run {step.command}"))
                self._dry_skipped.add(step.id)
                state, message = StepState.SKIPPED, "dry-run: not run"
            elif step.argv is not None:
                exit_code, message = await self._run_argv(step)
                state = StepState.SUCCEEDED if exit_code == 0 and not message else StepState.FAILED
            else:
                await self._run_api(step)
                state = StepState.SUCCEEDED
        except asyncio.CancelledError:
            state, message = StepState.CANCELLED, "cancelled"
        except asyncio.TimeoutError:
            state, message = StepState.FAILED, f"timed out after {step.timeout:g}s"
        except Exception as e:  # an API call failed: keep the reason, the plan stops here
            state, message = StepState.FAILED, f"{type(e).__name__}: {e}"
        if watch is not None:
            watch.cancel()
        if step.id in self._cancelled:
            state, message = StepState.CANCELLED, self.interrupted or "cancelled by user"
        elif step.id in self._diagnosed and state is not StepState.SUCCEEDED:
            cause = self._diagnosed[step.id]
            state, message = StepState.FAILED, f"{cause.text()}; next: {cause.fix}" if cause.fix else cause.text()
        if state is StepState.FAILED and step.warn_only:
            state = StepState.WARNED
        step.state = state
        self._write_journal(self.journal.step_end if self.journal else None, step, state.value,
                            exit_code, started, message, dry_run=self.dry_run)
        kind = EventKind.FAILED if state is StepState.FAILED else EventKind.FINISHED
        self._emit(Event(kind, step.id, state=state.value, exit_code=exit_code, message=message))
        return state

    async def _run_argv(self, step: Step) -> tuple[int | None, str]:
        env = None if self.env is None else {**os.environ, **self.env}
        spawn = asyncio.ensure_future(asyncio.create_subprocess_exec(
            *step.argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            stdin=asyncio.subprocess.DEVNULL, env=env, start_new_session=True))
        try:
            # Shielded: a cancel (a signal) that lands while the process is being started must
            # not lose the Process object and leave the command running unseen.
            proc = await asyncio.shield(spawn)
        except asyncio.CancelledError:
            try:
                started = await spawn
            except OSError:
                raise asyncio.CancelledError from None
            await _kill_group(started)
            raise
        except FileNotFoundError:
            return None, missing_tool_message(step.argv[0])
        except PermissionError:
            return None, f"{step.argv[0]} is not executable"
        self._procs[step.id] = proc
        self._journal_pid(step, proc.pid)
        kept: list[str] | None = [] if step.verify else None
        try:
            await asyncio.wait_for(self._pump(step.id, proc, kept), timeout=step.timeout)
            code = await proc.wait()
            if code == 0 and step.verify:
                return code, step.verify(kept or [])
            return code, "" if code == 0 else f"exit code {code}"
        except (asyncio.TimeoutError, asyncio.CancelledError):
            await _kill_group(proc)
            raise
        finally:
            self._procs.pop(step.id, None)
            if step.id in self._cancelled:
                # The leader may have gone on SIGTERM while a child ignored it.
                _signal_group(proc, signal.SIGKILL)

    def _journal_pid(self, step: Step, pid: int) -> None:
        """A `step-pid` record after the step-start: the command's pid and start time, so a
        restart can tell whether it still runs. Best effort: a full disk must not orphan it."""
        if self.journal:
            try:
                self.journal.write({"type": "step-pid", "step": step.id, "pid": pid,
                                    "pid_start": procs.start_time(pid), "argv": redact_argv(step.argv)})
            except Exception:  # noqa: BLE001 - JournalError; the step-end still says what happened
                pass

    async def _pump(self, step_id: str, proc: asyncio.subprocess.Process,
                    kept: list[str] | None = None) -> None:
        assert proc.stdout is not None
        while True:
            try:
                raw = await proc.stdout.readline()
            except ValueError:  # a line over the stream limit: take what is buffered
                raw = await proc.stdout.read(64 * 1024)
            if not raw:
                break
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if kept is not None:  # only for a step with `verify`
                kept.append(line)
            self._emit(Event(EventKind.OUTPUT, step_id, line=line))

    async def _run_api(self, step: Step) -> None:
        result = await asyncio.wait_for(asyncio.to_thread(step.api.func), timeout=step.timeout)
        for line in _lines(result):
            self._emit(Event(EventKind.OUTPUT, step.id, line=line))


def _lines(result) -> Iterable[str]:
    if result is None:
        return []
    if isinstance(result, str):
        return result.splitlines()
    return [str(x) for x in result]


def _batches(steps: list[Step]) -> list[list[Step]]:
    """Consecutive steps with the same non-empty group form one concurrent batch."""
    out: list[list[Step]] = []
    for s in steps:
        if out and s.group and out[-1][0].group == s.group:
            out[-1].append(s)
        else:
            out.append([s])
    return out


def live_recorded(journal, own_run: str | None = None) -> list[tuple[str, int, list[str]]]:
    """(step, pid, argv) of processes recorded in step-pid records of other runs that are
    still alive (same start time and command line): helm orphaned by a killed app."""
    out = []
    seen = set()
    for r in reversed(journal.records):
        if r.get("type") != "step-pid" or r.get("run") == own_run:
            continue
        pid, argv = r.get("pid"), r.get("argv")
        if not isinstance(pid, int) or pid in seen or not isinstance(argv, list):
            continue
        seen.add(pid)
        started = r.get("pid_start")
        if procs.alive(pid, [str(a) for a in argv], started if isinstance(started, int) else None):
            out.append((str(r.get("step")), pid, argv))
    return out


def _signal_group(proc: asyncio.subprocess.Process, sig: int,
                  strays: list[tuple[int, int]] = ()) -> None:
    """Signal the step's process group, and every descendant's group and pid (a descendant
    that started a session of its own is outside the step's group)."""
    for target, kill in [(proc.pid, os.killpg)] + [(g, os.killpg) for _, g in strays] + \
            [(p, os.kill) for p, _ in strays]:
        try:
            kill(target, sig)
        except (ProcessLookupError, PermissionError):
            pass


async def _kill_group(proc: asyncio.subprocess.Process) -> None:
    # Found before the leader dies: afterwards its children are re-parented and lost to view.
    strays = [(p, g) for p, g in procs.descendants(proc.pid) if g != proc.pid]
    _signal_group(proc, signal.SIGTERM, strays)
    try:
        await asyncio.wait_for(proc.wait(), KILL_GRACE)
    except asyncio.TimeoutError:
        pass
    # Children of the step (helm's plugins, a shell's sleep) may outlive the leader.
    _signal_group(proc, signal.SIGKILL, strays)
    if proc.returncode is None:
        await proc.wait()
