"""Offline generators: stories, illustrations and speech made locally and deterministically.

Each module is pure apart from the optional espeak-ng call in ``speech``: the same inputs give the
same bytes, so jobs can be retried and tests can compare outputs exactly.
"""
