"""When the bridge sends waiting acks though more reports are queued (``AckBook.due``):
once ``ACK_BATCH`` sequence numbers wait, or the oldest waited ``ACK_DELAY_S``; taking
them starts the clock again."""

from __future__ import annotations

import time

from controlplane.report_acks import ACK_BATCH, ACK_DELAY_S, AckBook


def test_acks_are_due_when_many_or_old() -> None:
    book = AckBook()
    assert not book.due(time.monotonic())  # nothing waits
    book.stored("d1", 1)
    now = time.monotonic()
    assert not book.due(now)
    assert book.due(now + ACK_DELAY_S)
    book.take()
    assert not book.due(now + 10 * ACK_DELAY_S)  # taken: nothing waits
    for seq in range(1, ACK_BATCH + 1):
        book.lost("d2", seq)
    assert book.due(time.monotonic())  # as many as a batch, however young
