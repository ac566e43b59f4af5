"""Oracle harness: random MLMD call sequences checked against the official ml-metadata.

calls.py generates seeded sequences by driving a live store; runner.py replays one
on ml_metadata or mlmd_log (one interpreter each) and records normalised results.
"""
