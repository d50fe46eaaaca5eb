"""The retained watch knows its own publications when the broker sends them back
(``RetainedWatch.sent`` / ``echo``): only a payload that differs from what was last
published on that topic goes on to the database check."""

from __future__ import annotations

from sqlalchemy import Engine

from controlplane.publisher import MemoryPublisher
from controlplane.retained_watch import RetainedWatch
from tests.support.controlplane import signer
from tests.support.trust import TrustKit


def test_an_echo_of_the_last_publication_is_known_and_nothing_else(
    engine: Engine, trust_kit: TrustKit
) -> None:
    watch = RetainedWatch(engine, signer(engine, trust_kit), MemoryPublisher())
    topic, other = "edgefleet/v1/devices/d1/desired", "edgefleet/v1/devices/d2/desired"
    assert not watch.echo(topic, b"command 1")  # nothing published yet
    watch.sent(topic, b"command 1")
    assert watch.echo(topic, b"command 1") and watch.echo(topic, bytearray(b"command 1"))
    assert not watch.echo(topic, b"junk") and not watch.echo(other, b"command 1")
    watch.sent(topic, b"command 2")  # a newer one: the old bytes are no longer ours
    assert not watch.echo(topic, b"command 1") and watch.echo(topic, b"command 2")
    watch.sent(topic, b"")  # a cleared topic
    assert watch.echo(topic, b"")
