"""Offline tools over the library, run by operators and benchmarks, never by the serving processes.

``evaluation`` measures retrieval quality on a labelled manifest, ``finetune`` trains the upper layers on a
catalog, ``sheet`` draws a query and its results as one picture.
"""
