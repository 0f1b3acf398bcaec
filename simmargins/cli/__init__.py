"""The ``simmargins`` command line: spec reading, the pipeline of analyses, reports, demo.

``command`` (argument parsing, jobs, exit codes), ``spec``/``spec_read``/``spec_data``
(the TOML spec and its checks against the data), ``pipeline`` (fit, session, quantities),
``report`` (files written per quantity) and ``demo``.

May import: the public API (``simmargins``), the results layer and the shared modules;
never the engine, resampling, adapters or session internals.
"""
