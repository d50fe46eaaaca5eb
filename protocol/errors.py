"""Errors of the wire contract.

ProtocolError
    raised for a topic or payload that does not follow the contract (bad JSON, wrong
    fields, unknown topic, invalid device id). Its message is one line, safe to log.
"""


class ProtocolError(ValueError):
    """A topic or payload does not follow the EdgeFleet wire contract."""
