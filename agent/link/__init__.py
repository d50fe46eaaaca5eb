"""The MQTT link to the control plane: the connection, and the on-disk spool of reports.

``mqtt_link.MqttLink`` owns the broker connection (reconnection, subscriptions, LWT);
reports wait in ``spool.Spool`` (SQLite) until the control plane acknowledges them (the
broker's PUBACK for a device without a report key), sent in order by
``spool_sender.SpoolSender``. ``paho_import`` comes first: it imports paho without
dnspython (SRV lookups, which the agent never makes).
"""

from agent.link import paho_import  # noqa: F401  (first: before any module imports paho)
from agent.link.mqtt_link import MqttLink
from agent.link.spool import Spool, SpoolEntry

__all__ = ["MqttLink", "Spool", "SpoolEntry"]
