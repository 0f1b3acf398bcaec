"""Results: what a verb returns and everything that presents or keeps it.

``MarginsResult`` (``result``), the interval and p-value routes it reports from
(``inference``), the trust criteria (``criteria``), its summary text (``summary``), plots
(``plotting``, with what they share in ``plot_common``), netCDF I/O (``netcdf``) and
atomic file writes (``atomic``). Presentation computes no statistic.

May import: the shared ``simmargins._errors``/``_validate`` only (not the engine,
resampling, adapters, session or command line).
"""
