"""Independent work on a Dask cluster: connecting to one, shipping what every task
shares to each worker once, and running tasks that keep the engine within the cores a
worker was given. Dask is optional (``pip install "losstopo[distributed]"``); nothing
here imports it until a cluster is asked for."""

from __future__ import annotations

import json
import os
import re
import threading
import uuid
from typing import Callable, Iterable, Iterator, Optional, Tuple

from ._native import cores

EXTRA = 'pip install "losstopo[distributed]"'
# A worker resource: the engine threads a worker offers (its cores), for workers
# started with one task thread (`dask worker --nthreads 1 --resources
# losstopo_threads=32`); without it a worker offers its task threads.
RESOURCE = "losstopo_threads"
_ADDRESS = re.compile(r"^(tcp|tls|ws|wss|inproc|ucx)://\[?[A-Za-z0-9_.:-]+\]?:(\d{1,5})$")




def distributed_module():
    """The ``distributed`` package, or an ImportError naming the extra that installs it."""
    try:
        import distributed
    except ImportError as e:
        raise ImportError(f"a cluster needs Dask's distributed scheduler, which is not "
                          f"installed: {EXTRA}") from e
    return distributed


def parse(spec: str) -> Tuple[str, object]:
    """("local", N), ("address", "tcp://HOST:PORT") or ("file", path) of a cluster
    spec; a ValueError naming the accepted forms otherwise (nothing is contacted)."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"cluster: expected local:N, tcp://HOST:PORT or a scheduler .json "
                         f"file, got {spec!r}")
    spec = spec.strip()
    if spec.startswith("local:"):
        n = spec[6:]
        if not re.fullmatch(r"[0-9]{1,4}", n) or not 1 <= int(n) <= cores():
            raise ValueError(f"cluster: local:N needs a worker count N from 1 to this "
                             f"machine's {cores()} cores, got {spec!r}")
        return "local", int(n)
    if "://" in spec:
        m = _ADDRESS.match(spec)
        if not m or not 1 <= int(m.group(2)) <= 65535:
            raise ValueError(f"cluster: {spec!r} is not a scheduler address of the form "
                             "tcp://HOST:PORT (port 1-65535)")
        return "address", spec
    if spec.endswith(".json"):
        if not os.path.isfile(spec):
            raise ValueError(f"cluster: scheduler file {spec} not found (a Dask scheduler "
                             "writes it with --scheduler-file)")
        try:
            with open(spec) as f:
                address = json.load(f).get("address")
        except (OSError, ValueError, AttributeError) as e:
            raise ValueError(f"cluster: scheduler file {spec} is not a Dask scheduler file "
                             f"({e})") from e
        if not isinstance(address, str) or not _ADDRESS.match(address):
            raise ValueError(f"cluster: scheduler file {spec} holds no scheduler address")
        return "file", spec
    raise ValueError(f"cluster: expected local:N, tcp://HOST:PORT or a scheduler .json file, "
                     f"got {spec!r}")


class Cluster:
    """A connection to a Dask cluster (``with Cluster("local:4") as c: ... c.client``).

    ``local:N`` starts N worker processes on this machine, each given
    cores // N threads (at least one); an address or a scheduler file connects to
    a running scheduler (failing within ``timeout`` seconds when it cannot be
    reached). Closing shuts down only what this object started.
    """

    def __init__(self, spec: str, timeout: float = 20.0):
        kind, value = parse(spec)
        distributed = distributed_module()
        self.spec = spec
        self._cluster = None
        try:
            if kind == "local":
                # Each worker offers its share of the cores to one engine at a time.
                self._cluster = distributed.LocalCluster(
                    n_workers=value, threads_per_worker=1,
                    resources={RESOURCE: max(1, cores() // value)}, processes=True,
                    dashboard_address=":0", silence_logs=40)
                self.client = distributed.Client(self._cluster, timeout=timeout)
            elif kind == "address":
                self.client = distributed.Client(value, timeout=timeout)
            else:
                self.client = distributed.Client(scheduler_file=value, timeout=timeout)
        except Exception as e:  # OSError, (asyncio.)TimeoutError, a scheduler's refusal
            if self._cluster is not None:
                self._cluster.close()
            raise ConnectionError(f"cluster: cannot reach the Dask scheduler of {spec!r} "
                                  f"within {timeout:g} s ({type(e).__name__}: {e})") from e

    @property
    def local(self) -> bool:
        """Whether the workers are processes of this machine (local:N)."""
        return self._cluster is not None

    def describe(self) -> str:
        threads = worker_threads(self.client)
        return (f"{self.spec}: {len(threads)} workers, engine threads "
                f"{min(threads.values(), default=0)}-{max(threads.values(), default=0)} "
                f"({sum(threads.values())} in all)")

    def close(self) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()

    def __enter__(self) -> "Cluster":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def check_client(client):
    """``client`` as a dask Client (an ImportError naming the extra without Dask)."""
    distributed = distributed_module()
    if not isinstance(client, distributed.Client):
        raise TypeError(f"client: expected a dask.distributed.Client, got "
                        f"{type(client).__name__}")
    return client


# One engine call at a time per worker process: a worker with k task threads would
# otherwise run k engines of `threads` threads each.
_ENGINE_LOCK = threading.Lock()


def engine_threads(client, shared: tuple) -> int:
    """The engine threads of every task: a landscape's own setting when it has one,
    else the smallest worker's thread count. Fixed for the whole call, so a task's
    numbers never depend on the worker it lands on (or lands on again)."""
    from .landscape import Landscape

    asked = [s.threads for s in shared if isinstance(s, Landscape) and s.threads > 0]
    if asked:
        return max(asked)
    threads = worker_threads(client)
    if not threads:
        raise RuntimeError("cluster: the scheduler has no workers")
    return max(1, min(threads.values()))


def _workers(client) -> dict:
    try:
        info = client.scheduler_info(n_workers=-1)  # all of them, not the first few
    except TypeError:  # releases before the n_workers argument list all workers
        info = client.scheduler_info()
    return info.get("workers", {})


def worker_threads(client) -> dict:
    """Engine threads each worker offers: its losstopo_threads resource, else its
    task threads."""
    return {a: int((w.get("resources") or {}).get(RESOURCE, w.get("nthreads", 1)))
            for a, w in _workers(client).items()}


def _task_resources(client, threads: int) -> Optional[dict]:
    """When every worker offers the losstopo_threads resource (enough for one task),
    each task claims its threads of it: a worker then holds one task per engine and
    the scheduler keeps the rest for whichever worker frees first. Else None (the
    per-process engine lock serializes a worker's tasks)."""
    offers = [(w.get("resources") or {}).get(RESOURCE) for w in _workers(client).values()]
    if offers and all(o is not None and o >= threads for o in offers):
        return {RESOURCE: threads}
    return None


def _run(fn: Callable, shared: tuple, item, threads: int):
    """fn(*shared, item) on a worker with its landscapes' engines at ``threads``
    threads (restored afterwards: in a threaded in-process cluster the landscape is
    the caller's own)."""
    from .landscape import Landscape

    with _ENGINE_LOCK:
        engines = [s for s in shared if isinstance(s, Landscape) and s.device == "cpu"]
        before = [s.threads for s in engines]
        try:
            for s in engines:
                s.threads = threads
            return fn(*shared, item)
        finally:
            for s, t in zip(engines, before):
                s.threads = t or None


class TasksLost(RuntimeError):
    """Tasks could not be completed on the cluster (their workers and data were lost
    more often than allowed); finished work is kept, a rerun resumes."""


def _lost_errors(distributed) -> tuple:
    """The exceptions of a task lost with its worker or its data (not of its code)."""
    import concurrent.futures

    names = [("distributed.client", "FutureCancelledError"),
             ("distributed.scheduler", "KilledWorker"),
             ("distributed.comm.core", "CommClosedError")]
    out = [concurrent.futures.CancelledError, OSError]
    for mod, name in names:
        try:
            m = __import__(mod, fromlist=[name])
            out.append(getattr(m, name))
        except (ImportError, AttributeError):
            pass
    return tuple(out)


def run_tasks(client, fn: Callable, shared: tuple, items: Iterable,
              key: Optional[str] = None) -> Iterator:
    """(position of the item, fn(*shared, item)) for every item: one after another in
    this process without a client, as tasks of its cluster with one (see
    :func:`as_finished`). Closing the iterator cancels what still runs."""
    if client is None:
        return ((i, fn(*shared, item)) for i, item in enumerate(items))
    return as_finished(check_client(client), fn, shared, items, key)


def as_finished(client, fn: Callable, shared: tuple, items: Iterable,
                key: Optional[str] = None, attempts: int = 3) -> Iterator:
    """Runs fn(*shared, item) for every item on the cluster and yields
    (position of the item, result) as the tasks finish.

    The shared objects (a landscape, the solutions) travel to each worker once, not
    with every task. A task whose worker dies is run again on another by the
    scheduler; when the shared data themselves are lost (every worker holding them
    died), they are sent again and the unfinished items resubmitted, up to
    ``attempts`` times, then :class:`TasksLost` is raised. Every task runs its
    engines at :func:`engine_threads` threads.
    """
    distributed = distributed_module()
    items = list(items)
    if not items:
        return
    lost = _lost_errors(distributed)
    threads = engine_threads(client, shared)
    resources = _task_resources(client, threads)
    prefix = f"{key or getattr(fn, '__name__', 'task')}-{uuid.uuid4().hex}"
    pending = list(range(len(items)))
    for attempt in range(1, attempts + 1):
        futures = {}
        try:
            try:
                if attempt > 1:  # a lost worker's replacement may still be starting
                    client.wait_for_workers(1, timeout=120)
                shared_f = tuple(client.scatter([s], broadcast=True, hash=False)[0]
                                 for s in shared)
            except lost:  # (a TimeoutError waiting for workers is an OSError too)
                continue
            for i in pending:
                f = client.submit(_run, fn, shared_f, items[i], threads, pure=False,
                                  key=f"{prefix}-{attempt}-{i}", resources=resources)
                futures[f] = i
            for f in distributed.as_completed(list(futures)):
                try:
                    result = f.result()
                except lost:
                    break  # data or workers lost: send again, resubmit what is left
                pending.remove(futures[f])
                yield futures[f], result
        finally:
            client.cancel(list(futures))
        if not pending:
            return
    raise TasksLost(f"cluster: {len(pending)} of {len(items)} tasks were lost with their "
                    f"workers {attempts} times; finished work is kept, rerun to resume")
