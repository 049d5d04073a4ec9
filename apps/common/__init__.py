"""Plumbing shared by every app: run folders, metrics, summaries, curves, Ctrl-C, CLI errors.

Nothing here knows about a model or a dataset; the app folders import from here, never the
other way round.
"""
