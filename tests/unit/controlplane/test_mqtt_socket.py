"""``ReadAheadSocket``: paho's small reads served from one larger ``recv``, what is
buffered announced by ``pending`` (so paho reads it before waiting in ``select``), a
closed peer and an empty non-blocking socket reported as the plain socket would. A real
socket pair."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from controlplane.mqtt_socket import ReadAheadSocket


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


def test_small_reads_come_from_one_recv_in_order(pair: tuple[socket.socket, socket.socket]) -> None:
    writer, reader = pair
    packets = [b"\x30\x05hello", b"\x30\x03abc", b"\x40\x02\x00\x01"]
    writer.sendall(b"".join(packets))
    sock = ReadAheadSocket(reader)
    got = []
    for packet in packets:  # as paho reads: command byte, length byte, the rest
        got.append(sock.recv(1) + sock.recv(1) + sock.recv(packet[1]))
        if packet is not packets[-1]:
            assert sock.pending() > 0  # paho must not wait in select for these
    assert got == packets
    assert sock.pending() == 0


def test_an_empty_nonblocking_socket_and_a_closed_peer_read_as_usual(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    writer, reader = pair
    reader.setblocking(False)
    sock = ReadAheadSocket(reader)
    with pytest.raises(BlockingIOError):
        sock.recv(1)
    writer.sendall(b"xy")
    writer.close()
    assert sock.recv(1) == b"x" and sock.recv(5) == b"y"
    assert sock.recv(1) == b""  # the peer closed
    assert sock.fileno() == reader.fileno()
