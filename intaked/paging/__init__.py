"""QRC paging: on-call, escalation, acknowledgement."""
