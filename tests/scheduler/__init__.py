"""Tests of intaked/scheduler.py: the timed workers and what runs once per slot across nodes."""
