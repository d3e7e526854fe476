"""Tickets: the one place a ticket is filed (:mod:`.filing`), changed by people
(:mod:`.lifecycle`), and its history written (:mod:`.events`).

Sits below the channels' intake (``intake/``, ``hotline/``), which call it, and above the stores
and services it uses (routing, sla, outbound, paging, store).
"""
