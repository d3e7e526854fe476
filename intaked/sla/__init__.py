"""Working time: calendars, SLA targets and deadlines."""
