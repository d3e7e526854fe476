"""Intake: captured raw items become tickets.

``capture`` commits what a channel received (the channel answers its peer only after that),
``ledger`` tracks each item (received → processing → done | duplicate | quarantined),
``ingest`` turns one parsed item into ticket rows, and ``processor`` drives it all on the loop.
"""
