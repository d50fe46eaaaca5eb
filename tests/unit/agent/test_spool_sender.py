"""The spool sender's acknowledgement rules (issue 13.4), driven step by step on a real
spool file: the broker's PUBACK frees a report of a device with a report key from the
send window only; the control plane's ack removes it; a gap is sent again once it has
awaited its ack for a grace (another replica may still hold it); a silent control plane
gets probes (the oldest report) and nothing new."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from agent.link import spool_sender
from agent.link.spool import Spool, SpoolEntry
from agent.link.spool_sender import SpoolSender


class Link:
    """What the sender hands over, in order (the seam paho sits behind)."""

    def __init__(self) -> None:
        self.sent: list[SpoolEntry] = []

    def send(self, entry: SpoolEntry) -> int:
        self.sent.append(entry)
        return len(self.sent)  # paho's mid

    def reports(self) -> list[int | None]:
        return [e.report_seq for e in self.sent]


def _sender(tmp_path: Path, *report_seqs: int | None) -> tuple[SpoolSender, Spool, Link]:
    spool = Spool(tmp_path / "spool.sqlite", 100)
    for seq in report_seqs:
        spool.append("heartbeat", b"x", seq)
    link = Link()
    sender = SpoolSender("d1", spool, link.send)
    sender.connected()
    return sender, spool, link


def _step(sender: SpoolSender) -> None:
    sender._apply_acks()
    sender._pump()


def _puback_all(sender: SpoolSender, link: Link) -> None:
    for mid in range(1, len(link.sent) + 1):
        sender.acked(mid)


def test_puback_alone_keeps_a_report_the_control_plane_acknowledges(tmp_path: Path) -> None:
    sender, spool, link = _sender(tmp_path, 11, None)
    _step(sender)
    _puback_all(sender, link)
    _step(sender)
    assert spool.pending == 1 and sender.awaiting == 1  # the unsealed one is gone
    sender.settled([11], [])
    _step(sender)
    assert (spool.pending, spool.acked, sender.awaiting) == (0, 1, 0)


def test_an_ack_past_unacknowledged_reports_sends_them_again_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spool_sender, "GAP_GRACE_S", 0.0)
    sender, spool, link = _sender(tmp_path, 11, 12, 13)
    _step(sender)
    _puback_all(sender, link)
    _step(sender)
    sender.settled([13], [])  # 11 and 12 never reached the control plane
    _step(sender)
    assert link.reports() == [11, 12, 13, 11, 12]
    assert (spool.pending, spool.acked) == (2, 1)
    sender.settled([], [11])  # too old for its window: counted lost on both sides
    _step(sender)
    assert (spool.pending, spool.acked, spool.lost) == (1, 1, 1)


def test_a_gap_another_replica_acknowledges_within_the_grace_is_not_sent_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1000.0]  # the sender's monotonic clock, moved by hand
    monkeypatch.setattr(spool_sender.time, "monotonic", lambda: clock[0])
    sender, spool, link = _sender(tmp_path, 11, 12, 13, 14)
    _step(sender)
    _puback_all(sender, link)
    _step(sender)
    sender.settled([12], [])  # replica B was quicker than replica A with 11
    _step(sender)
    sender.settled([11], [])  # ... which now acknowledges it too
    _step(sender)
    sender.settled([14], [])  # 13 is missing, for longer than the grace: lost
    _step(sender)
    assert link.reports() == [11, 12, 13, 14]
    clock[0] += spool_sender.GAP_GRACE_S - 0.1
    _step(sender)
    assert link.reports() == [11, 12, 13, 14]  # still within the grace
    clock[0] += 0.2
    _step(sender)
    assert link.reports() == [11, 12, 13, 14, 13]
    assert (spool.pending, spool.acked) == (1, 3)


def test_a_silent_control_plane_gets_probes_and_nothing_new(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spool_sender, "STALL_S", 0.0)
    monkeypatch.setattr(spool_sender, "PROBE_S", 0.0)
    sender, spool, link = _sender(tmp_path, 11, 12)
    _step(sender)
    _puback_all(sender, link)
    _step(sender)  # stalled: the oldest goes again, alone
    spool.append("heartbeat", b"new", 13)
    _step(sender)
    assert link.reports()[:3] == [11, 12, 11] and 13 not in link.reports()
    _puback_all(sender, link)
    sender.settled([11], [])  # the control plane is back: the probe is acknowledged
    _step(sender)
    _step(sender)
    assert link.reports()[-2:] == [12, 13]  # the gap first, then what is new


def test_at_most_a_window_of_reports_is_out_unacknowledged(tmp_path: Path) -> None:
    window = spool_sender.ACK_WINDOW
    sender, _, link = _sender(tmp_path, *range(1, window + 11), None)
    _step(sender)
    assert link.reports() == list(range(1, window + 1))  # the rest waits for acks
    _puback_all(sender, link)
    sender.settled(list(range(1, 11)), [])
    _step(sender)
    _step(sender)
    assert link.reports()[window:] == [*range(window + 1, window + 11), None]


def test_a_driven_sender_has_no_thread_and_asks_its_owner_to_step(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.sqlite", 100)
    link = Link()
    wakes: list[int] = []
    sender = SpoolSender("d1", spool, link.send, wake=lambda: wakes.append(1))
    sender.start()
    assert sender._thread is None  # a light device's link: its loop calls step()
    sender.connected()
    spool.append("heartbeat", b"x", None)
    sender.notify()
    assert len(wakes) == 2 and link.sent == []  # nothing happens until the owner steps
    assert sender.step()
    assert [e.payload for e in link.sent] == [b"x"]
    sender.acked(1)
    sender.step()
    assert spool.pending == 0 and len(wakes) == 3
    sender.stop(0.1)
    assert not sender.step()  # stopped


def test_probes_back_off_while_none_is_acknowledged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(spool_sender.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(spool_sender.random, "uniform", lambda a, b: 1.0)  # no jitter
    sender, _, link = _sender(tmp_path, 11)
    _step(sender)
    _puback_all(sender, link)
    probes: list[float] = []
    for _ in range(400):  # 40 s in steps of 0.1 s, no ack from the control plane
        clock[0] += 0.1
        before = len(link.sent)
        _step(sender)
        if len(link.sent) > before:
            probes.append(round(clock[0] - 1000.0, 1))
            _puback_all(sender, link)  # the broker has it; the control plane says nothing
    gaps = [round(b - a, 1) for a, b in itertools.pairwise(probes)]
    assert probes[0] == spool_sender.STALL_S  # the first probe once the stall is seen
    assert gaps[:3] == [2.0, 4.0, 8.0]  # (to within the 0.1 s steps)
    assert gaps[3:] and all(10.0 <= g <= 10.2 for g in gaps[3:])  # PROBE_MAX_S
    sender.settled([11], [])  # an ack: the next stall starts from PROBE_S again
    _step(sender)
    assert sender._probe_gap == spool_sender.PROBE_S
