"""Service-level reports: the figures of a period (``service_level``), their chart
(``chart``), the mail that carries both (``mailing``) and when the scheduled ones are due
(``schedule``)."""
