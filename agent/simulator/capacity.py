"""How many simulated devices one process can hold, checked before any starts.

**Full agents** (``SimulatedFleet``): each runs paho's own network thread, which waits in
``select()``; ``select()`` cannot watch a file descriptor numbered ``FD_SETSIZE`` (1024)
or above. paho then treats the connection as lost and tries again, forever and silently,
so devices beyond that point never connect (seen: 300 agents held 2,235 descriptors and
only 127 connected). Each full agent holds about ``FULL_AGENT_FDS`` descriptors (its
broker socket, its spool and selection-cache databases with their WAL files, its local API
listener; ``tests/integration/test_simulate_fleets.py`` measures it), so one process
holds at most ``MAX_FULL_AGENTS``: a larger ``--count`` is refused with what to do instead.

**Light devices** (``LightFleet``): one epoll loop, so no such limit; each holds
``LIGHT_DEVICE_FDS`` descriptors (its broker socket, its spool database with its WAL and
shared-memory files). ``raise_file_limit`` raises the process's soft limit on open files
(``RLIMIT_NOFILE``) as far as needed, up to the hard limit; past that the count is refused.
"""

from __future__ import annotations

import resource

from agent.errors import AgentConfigError

#: select()'s FD_SETSIZE: paho's own network thread cannot use a descriptor at or above it.
SELECT_FD_LIMIT = 1024
#: Descriptors one full simulated agent may hold: measured 8.0 connected and serving one
#: model (broker socket, spool and selection-cache databases with their -wal and -shm
#: files, local API listener), plus room for a download's connection and more models.
FULL_AGENT_FDS = 10
#: Descriptors the process holds besides its agents (interpreter, libraries, logs).
PROCESS_RESERVE_FDS = 64
#: The most full agents whose descriptors all stay below ``SELECT_FD_LIMIT``.
MAX_FULL_AGENTS = (SELECT_FD_LIMIT - PROCESS_RESERVE_FDS) // FULL_AGENT_FDS
#: Descriptors one light device holds: broker socket, spool database, its -wal and -shm.
LIGHT_DEVICE_FDS = 4
#: Besides the devices: the shared HTTP connection pool, worker threads, the interpreter.
LIGHT_RESERVE_FDS = 256


def check_full_count(count: int) -> None:
    """AgentConfigError (one line) if one process cannot hold ``count`` full agents."""
    if count > MAX_FULL_AGENTS:
        raise AgentConfigError(
            f"--count {count}: one process holds at most {MAX_FULL_AGENTS} full simulated "
            f"agents (each holds about {FULL_AGENT_FDS} open files, and paho's network "
            f"thread cannot use one numbered {SELECT_FD_LIMIT} or above); use --light for "
            f"a large fleet, or --light --full N for light devices plus N full agents"
        )


def light_files_needed(count: int) -> int:
    """Open files a process of ``count`` light devices needs."""
    return count * LIGHT_DEVICE_FDS + LIGHT_RESERVE_FDS


def raise_file_limit(count: int) -> int:
    """Make sure this process may open the files ``count`` light devices need: raise its
    soft ``RLIMIT_NOFILE`` up to the hard limit if need be; the soft limit now.
    AgentConfigError (one line) if even the hard limit is too low."""
    needed = light_files_needed(count)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or needed <= soft:
        return soft
    if hard != resource.RLIM_INFINITY and needed > hard:
        raise AgentConfigError(
            f"{count} light devices need about {needed} open files, but this process may "
            f"open at most {hard} (ulimit -Hn); raise that limit (LimitNOFILE= under "
            f"systemd) or split the fleet over several processes"
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    return needed
