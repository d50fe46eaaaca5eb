"""Host probing for the edge agent (a leaf: imports nothing else of ours).

Public surface:
    HostFacts   frozen description of a host (CPU, ISA flags, RAM, OS, backends)
    probe_host  collect HostFacts; never raises (each probe is guarded)

"Probe softly, choose purely": probing may fail on odd hosts and then leaves a field
empty; the (later) profile catalogue and selection policy are pure functions of
HostFacts and measured timings.
"""

from hw_profiles.probe import ISA_FLAGS_OF_INTEREST, HostFacts, probe_host

__all__ = ["ISA_FLAGS_OF_INTEREST", "HostFacts", "probe_host"]
