"""Job plumbing shared by every command and trainer: crash-safe files, output folders, workers, timing, CLI types,
interruption, log files and progress.

One implementation of each guarantee, so that every job writes, refuses, counts and times the same way.
"""
