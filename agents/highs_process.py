"""HiGHS solves in a child process that can be killed when a solve overruns its wall-time limit.

HiGHS 1.16 checks its time limit and the interrupt callbacks only at some points. During some root-node work (cut
separation, for example) it went 8 s without a check in a 2 s solve of a 64-sample, 4-worker batch. A solve in
this process could not be stopped, so :class:`HighsProcess` runs solves in a long-lived child process: a fresh
interpreter running ``python -m agents.highs_process``, so that neither thread state nor the caller's ``__main__``
is copied or re-run. The parent waits until the limit plus a grace period, then kills the child, keeps the best
plan that the child reported so far, and starts a new child for the next solve. Requests and replies are pickled
over two pipes; a solve costs about a millisecond of inter-process overhead.
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

__all__ = ["HighsProcess", "new_highs", "run_highs", "shared_process"]

logger = logging.getLogger(__name__)

# Time allowed past the limit before the child is killed: a fixed part plus a share of the limit.
GRACE_S = 0.1
GRACE_FRACTION = 0.1

_highs_constructed = False


def new_highs():
    """A silent ``highspy.Highs``.

    highspy 1.16 prints a banner to the process's standard output when the first instance is built, before any
    option can be set. That first construction runs with file descriptor 1 pointed at /dev/null, so the banner
    cannot corrupt the output of a command. Output of other threads during that construction is lost too.
    """
    global _highs_constructed
    import highspy

    if _highs_constructed:
        highs = highspy.Highs()
    else:
        sys.stdout.flush()
        saved = os.dup(1)
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 1)
            highs = highspy.Highs()
        finally:
            os.dup2(saved, 1)
            os.close(saved)
            os.close(devnull)
        _highs_constructed = True
    highs.setOptionValue("output_flag", False)
    return highs


def run_highs(
    arrays: dict[str, Any],
    warm_values: np.ndarray | None,
    options: dict[str, Any],
    time_limit_s: float,
    on_incumbent=None,
    on_bound=None,
) -> dict[str, Any]:
    """Solve the model of :func:`agents.ilp.model_arrays` in this process; return the outcome as a dict.

    Keys: ``status`` (``optimal``, ``time_limit``, ``infeasible``, ``error``), ``x`` (values of the x columns, or
    None without a plan), ``bound`` (dual bound), ``highs_status``, ``highs_gap``, ``nodes``, ``message``.
    ``on_incumbent(x, bound)`` is called with the x values of every improving plan HiGHS finds and the dual
    bound at that moment; ``on_bound(bound)`` with the dual bound whenever it rises (at most every 50 ms).
    """
    import highspy

    from agents.ilp import highs_lp

    deadline = time.perf_counter() + time_limit_s
    num_x = arrays["num_x"]
    highs = new_highs()
    highs.setOptionValue("time_limit", max(time_limit_s, 1e-3))
    for name, value in options.items():
        highs.setOptionValue(name, value)

    last_report = [0.0, -math.inf]  # time and value of the last dual bound passed to on_bound

    def interrupt_after_deadline(event) -> None:
        if time.perf_counter() > deadline:
            event.interrupt()

    def interrupt_or_report_bound(event) -> None:
        interrupt_after_deadline(event)
        bound = float(event.data_out.mip_dual_bound)
        now = time.perf_counter()
        if on_bound is not None and bound > last_report[1] and now - last_report[0] > 0.05:
            last_report[:] = [now, bound]
            on_bound(bound)

    highs.cbMipInterrupt += interrupt_or_report_bound
    highs.cbSimplexInterrupt += interrupt_after_deadline
    highs.cbIpmInterrupt += interrupt_after_deadline
    if on_incumbent is not None:
        highs.cbMipImprovingSolution += lambda event: on_incumbent(
            np.asarray(event.data_out.mip_solution)[:num_x], float(event.data_out.mip_dual_bound)
        )
    highs.passModel(highs_lp(arrays))
    if warm_values is not None:
        solution = highspy.HighsSolution()
        solution.col_value = warm_values
        solution.value_valid = True
        highs.setSolution(solution)
    highs.run()

    model_status = highs.getModelStatus()
    info = highs.getInfo()
    status_name = highs.modelStatusToString(model_status)
    has_solution = info.primal_solution_status == highspy.kSolutionStatusFeasible
    outcome: dict[str, Any] = {
        "highs_status": status_name,
        "highs_gap": float(info.mip_gap),
        "nodes": int(info.mip_node_count),
        "bound": float(info.mip_dual_bound),
        "x": np.asarray(highs.getSolution().col_value)[:num_x] if has_solution else None,
        "message": "",
    }
    stopped = {
        highspy.HighsModelStatus.kTimeLimit,
        highspy.HighsModelStatus.kInterrupt,
        highspy.HighsModelStatus.kHighsInterrupt,
        highspy.HighsModelStatus.kIterationLimit,
        highspy.HighsModelStatus.kSolutionLimit,
    }
    if model_status == highspy.HighsModelStatus.kOptimal:
        outcome["status"] = "optimal"
    elif model_status in stopped:
        outcome["status"] = "time_limit"
    elif model_status == highspy.HighsModelStatus.kInfeasible:
        outcome.update(status="infeasible", message="HiGHS: model is infeasible", x=None)
    else:
        outcome.update(status="error", message=f"HiGHS ended with model status {status_name!r}", x=None)
    return outcome


def _serve(requests: Connection, connection: Connection) -> None:
    """Child process loop: receive (arrays, warm values, options, limit), send incumbents and the outcome."""
    import highspy  # noqa: F401  (imported before "ready", so that imports do not count against a limit)

    import agents.ilp  # noqa: F401

    new_highs()
    connection.send(("ready", None))
    while True:
        try:
            request = requests.recv()
        except EOFError:
            return
        if request is None:
            return
        arrays, warm_values, options, time_limit_s = request
        try:
            outcome = run_highs(
                arrays, warm_values, options, time_limit_s,
                on_incumbent=lambda x, bound: connection.send(("incumbent", (x, bound))),
                on_bound=lambda bound: connection.send(("bound", bound)),
            )
        except Exception as error:  # report every failure to the parent instead of dying
            outcome = {"status": "error", "x": None, "message": f"HiGHS failed: {error!r}"}
        connection.send(("done", outcome))


class HighsProcess:
    """A child process that runs HiGHS solves one at a time (see the module docstring). Not thread-safe."""

    def __init__(self) -> None:
        self._process: subprocess.Popen | None = None
        self._requests: Connection | None = None
        self._replies: Connection | None = None
        self._ready = False
        self._overruns = 0

    def solve(
        self,
        arrays: dict[str, Any],
        warm_values: np.ndarray | None,
        options: dict[str, Any],
        time_limit_s: float,
    ) -> dict[str, Any]:
        """Outcome of :func:`run_highs` in the child; after an overrun, the last incumbent and ``killed=True``.

        ``startup_s`` in the outcome is the time spent waiting for a child to start; it comes off ``time_limit_s``.
        A child that is not ready within ``time_limit_s`` gives status ``time_limit`` with ``not_started=True``.
        """
        wait_start = time.perf_counter()
        self._start()
        try:
            ready = self._wait_ready(timeout_s=time_limit_s)
        except (EOFError, OSError, TimeoutError) as error:
            self._discard()
            return {"status": "error", "x": None, "message": f"HiGHS process did not start: {error!r}"}
        if not ready:
            # The child keeps starting and serves the next request.
            return {"status": "time_limit", "x": None, "not_started": True, "startup_s": time_limit_s,
                    "message": f"the HiGHS process was not ready within the {time_limit_s:.3f} s limit"}
        start = time.perf_counter()
        startup_s = start - wait_start
        time_limit_s = max(time_limit_s - startup_s, 1e-3)
        self._requests.send((arrays, warm_values, options, time_limit_s))
        kill_at = start + time_limit_s + GRACE_S + GRACE_FRACTION * time_limit_s
        incumbent, bound = None, None
        while True:
            wait_s = kill_at - time.perf_counter()
            try:
                ready = wait_s > 0 and self._replies.poll(wait_s)
                message = self._replies.recv() if ready else None
            except (EOFError, OSError) as error:
                self._discard()
                return {"status": "error", "x": None, "message": f"HiGHS process ended unexpectedly: {error!r}"}
            if message is None:
                # A tight per-batch limit can make every solve overrun: warn on the 1st, 10th, 100th ... only.
                self._overruns += 1
                level = logging.WARNING if math.log10(self._overruns).is_integer() else logging.DEBUG
                logger.log(
                    level,
                    "HiGHS overran its %.3f s limit by more than the grace period; killing process %d "
                    "(overrun %d in this session)",
                    time_limit_s, self._process.pid, self._overruns,
                )
                self._discard()
                # Start the next child now, so that its start-up overlaps with the caller's work.
                self._start()
                return {"status": "time_limit", "x": incumbent, "bound": bound, "killed": True,
                        "highs_status": "killed after the time limit", "message": "", "startup_s": startup_s}
            kind, payload = message
            if kind == "incumbent":
                incumbent, bound = payload
            elif kind == "bound":
                bound = payload
            else:
                return {**payload, "startup_s": startup_s}

    def start(self) -> None:
        """Start the child without waiting for it, so that its start-up overlaps with other work."""
        self._start()

    def warm_up(self) -> None:
        """Start the child and wait until it is ready, so that the next solve does not wait for its start-up."""
        self._start()
        # NOTE: 60 s is a guess of the worst start-up (interpreter, NumPy and highspy imports) on a loaded machine.
        if not self._wait_ready(timeout_s=60.0):
            raise TimeoutError("the HiGHS process sent no ready message within 60 s")

    def close(self) -> None:
        """Stop the child process (it is started again by the next solve)."""
        if self._process is not None and self._process.poll() is None:
            try:
                self._requests.send(None)
                self._process.wait(timeout=1.0)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self._discard()

    def _start(self) -> None:
        if self._process is not None and self._process.poll() is None:
            return
        self._discard()
        request_read, request_write = os.pipe()
        reply_read, reply_write = os.pipe()
        # The child imports the same modules as this process, wherever they were found.
        environment = dict(os.environ, PYTHONPATH=os.pathsep.join(path for path in sys.path if path))
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "agents.highs_process", str(request_read), str(reply_write)],
                pass_fds=(request_read, reply_write),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                env=environment,
            )
        finally:
            os.close(request_read)
            os.close(reply_write)
        self._requests = Connection(request_write, readable=False)
        self._replies = Connection(reply_read, writable=False)
        self._ready = False

    def _wait_ready(self, timeout_s: float = 60.0) -> bool:
        """Wait up to ``timeout_s`` for the child's ready message; return whether it came."""
        if self._ready:
            return True
        if not self._replies.poll(max(timeout_s, 0.0)):
            return False
        kind, _ = self._replies.recv()
        if kind != "ready":
            raise OSError(f"the HiGHS process sent {kind!r} before its ready message")
        self._ready = True
        return True

    def _discard(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(timeout=5.0)
        for connection in (self._requests, self._replies):
            if connection is not None:
                connection.close()
        self._process, self._requests, self._replies, self._ready = None, None, None, False


_shared: HighsProcess | None = None
_shared_lock = threading.Lock()


def shared_process() -> HighsProcess:
    """Return the process-wide solver process, which is closed at interpreter exit."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = HighsProcess()
            atexit.register(_shared.close)
        return _shared


if __name__ == "__main__":
    # Child side of HighsProcess: file descriptors of the request pipe (read end) and the reply pipe (write end).
    _serve(Connection(int(sys.argv[1]), writable=False), Connection(int(sys.argv[2]), readable=False))
