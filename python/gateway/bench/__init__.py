"""`gateway bench`: a load generator for LLM gateways and providers (see cli.py for the flags).

Modules: http1 (lean keep-alive client), load (closed and open loop), workers (one or several
load processes), histogram and stats (measurements), summary and report (figures, table, JSON,
CSV), runner (rounds, comparison, sweep), prompts and targets (request bodies), plot (PNG).
"""
