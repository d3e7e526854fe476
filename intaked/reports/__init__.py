"""Reports on the service the helpdesk gives (issue 18): read-only queries over the store that
aggregate in the database, and the formats they are shown in.

- ``service_level.py``: the service-level report of seed 003's weekly "service request index"
  (``build_report``: the JSON document every format, command and mail is made from);
- ``measures.py``: its one aggregating query over ``tickets`` (every figure a ``FILTER`` count);
- ``hotline.py``: the hotline's call figures for the same period;
- ``formats.py``: the report as text (a terminal table), CSV and self-contained HTML;
- ``chart.py``: its bar chart per group (matplotlib, PNG); ``mailing.py``: the mail that carries
  the table and the chart; ``schedule.py``: when the scheduled reports are due.

It reads ``store/`` and ``config/``; ``commands/`` (and the back office's scheduled mail) import
it. docs/service-levels.md defines every measure.
"""
