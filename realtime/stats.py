"""What a worker holds right now, for operators and for the tests that prove nothing leaks."""

from __future__ import annotations

import asyncio
import collections
import os
import weakref

consumers: "weakref.WeakSet" = weakref.WeakSet()
runtimes: "weakref.WeakSet" = weakref.WeakSet()


def snapshot(*, user_slots: int) -> dict:
    tasks = asyncio.all_tasks()
    return {
        "connections": sum(1 for c in consumers if not c.cleaned_up),
        "runtimes": sum(1 for r in runtimes if not r.stopped),
        "userSlots": user_slots,
        "tasks": len(tasks),
        "taskKinds": dict(collections.Counter(_kind(task) for task in tasks)),
        "rssBytes": _rss_bytes(),
        "openFds": _open_fds(),
    }


def _open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


def _rss_bytes() -> int:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _kind(task: asyncio.Task) -> str:
    coro = task.get_coro()
    return getattr(coro, "__qualname__", type(coro).__name__)
