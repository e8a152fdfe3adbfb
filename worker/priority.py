"""Which of the worker's threads gives way on a busy CPU: the replies first, then the network, then decoding.

On a machine where the network runs on the CPU, a forward pass holds every core for tens of milliseconds. The
event loop's work in between (ranking a batch, writing its replies, reading the next jobs) is small and is what
users wait for, so the network's threads run at a lower priority than the loop: the loop takes a core when it
needs one, for a millisecond or two, and the network gets it back at once. Decoding runs lower still: it is
pipelined, so a photo decoded a little later costs nothing, while a network thread that loses its core to a
decoder stalls the whole forward pass, whose operations wait for their slowest thread.

Linux sets niceness per thread and a new thread inherits its creator's, so the network's priority must be set
on the thread that first runs it: TensorFlow's and LiteRT's pools are started by that thread, at its niceness.
Raising one's niceness needs no privilege; lowering it again does, so only threads made for the purpose are
changed. Elsewhere (not Linux, or not allowed) every thread runs at the normal priority.
"""

from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor

# Added to the worker's own niceness. 5 gives the network about a third of the weight of a thread at 0, so the
# loop gets a core whenever it is ready to run, and decoding 10 gives way to both.
NETWORK_NICENESS = 5
DECODE_NICENESS = 10


def lower_this_thread(by: int) -> None:
    """Raise the calling thread's niceness by ``by`` (lower its CPU priority)."""
    with contextlib.suppress(OSError, AttributeError):
        thread = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, thread, os.getpriority(os.PRIO_PROCESS, thread) + by)


def _network_thread() -> None:
    lower_this_thread(NETWORK_NICENESS)


def _decode_thread() -> None:
    lower_this_thread(DECODE_NICENESS)


def network_pool() -> ThreadPoolExecutor:
    """One thread for the network: loading it (which starts its thread pools) and every forward pass."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="network", initializer=_network_thread)


def decode_pool(threads: int = 2) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="decode", initializer=_decode_thread)
