"""Probes that observe the machine and the endpoints; they never judge."""
