"""Alias package: ``onebit.train.loop.trainer`` is ``onebit.train.trainer``."""
