"""Alerts: signed webhooks (HTTP POST) on rollout and device events, with a persistent outbox.

Public surface: the tables (:mod:`.tables`), the event types and payloads
(:mod:`.events`), the signature (:mod:`.signing`), the emitter that writes events in the
transaction that causes them (:mod:`.emit`), webhook management (:mod:`.crud`) and the
dispatcher that fans events out and delivers them on one replica (:mod:`.dispatch`).
"""
