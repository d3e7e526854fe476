"""Working-time engine: calendars and SLA deadlines (not yet implemented in this release)."""
