"""The reconnect backoff both ends of the MQTT link use: full jitter, capped, reset on
success, and really handed to paho's reconnect wait."""

from __future__ import annotations

import random
import statistics
from collections import Counter

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from protocol.reconnect import RECONNECT_CAP_S, Backoff, set_next_wait


def test_waits_grow_to_the_cap_and_never_pass_it() -> None:
    backoff = Backoff(0.5, 3.0, random.Random(1))
    ceilings = []
    for _ in range(12):
        ceilings.append(backoff.ceiling)
        assert 0.0 <= backoff.next() <= ceilings[-1]
    assert ceilings[:4] == [0.5, 1.0, 2.0, 3.0]
    assert set(ceilings[3:]) == {3.0}
    backoff.reset()
    assert backoff.ceiling == 0.5


def test_a_long_outage_never_overflows() -> None:
    backoff = Backoff()
    for _ in range(5000):
        assert backoff.next() <= RECONNECT_CAP_S


def test_a_thousand_devices_at_the_cap_spread_over_it() -> None:
    """Devices in the same outage draw independent waits: not in step, evenly spread."""
    devices = [Backoff(rng=random.Random(seed)) for seed in range(1000)]
    for backoff in devices:
        for _ in range(10):  # long enough down to be at the cap
            backoff.next()
    waits = [backoff.next() for backoff in devices]
    assert max(waits) <= RECONNECT_CAP_S
    per_ms = Counter(int(w * 1000) for w in waits)
    assert max(per_ms.values()) <= 6  # 1,000 over 3,000 ms: a few at most share one
    # uniform on [0, cap]: each third of the cap gets about a third of the fleet
    thirds = [sum(1 for w in waits if k <= w * 3 / RECONNECT_CAP_S < k + 1) for k in range(3)]
    assert all(250 < n < 420 for n in thirds), thirds
    assert abs(statistics.mean(waits) - RECONNECT_CAP_S / 2) < 0.2


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError):
        Backoff(0.0, 1.0)
    with pytest.raises(ValueError):
        Backoff(2.0, 1.0)


def test_paho_sleeps_the_wait_it_was_given() -> None:
    """``set_next_wait`` drives paho's own reconnect step: its next wait is exactly ours,
    fractions of a second included, and not doubled on the attempt after."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.reconnect_delay_set(1, 30)
    client._reconnect_delay = 16  # paho in the middle of an outage
    set_next_wait(client, 0.25)
    client._reconnect_wait()  # what loop_forever calls between attempts
    assert client._reconnect_delay == 0.25
    client._reconnect_wait()
    assert client._reconnect_delay == 0.25
