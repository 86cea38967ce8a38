"""The application layer: pipelines, data sets and sources, reports, the command line and demo.

It may import everything below it (:mod:`modyn_store.core`, :mod:`engine`, :mod:`policies`,
:mod:`training`); nothing below imports it.
"""
