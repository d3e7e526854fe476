"""Routing: which ticket an inbound message belongs to (threading), and later rules and triage.

Empty in this release: every inbound message opens a new ticket. Threading comes with the IMAP channel.
"""
