"""The engine: from a scenario to numbers.

Formula specs and counterfactual designs (``formula``, ``design``), scenarios and their
weight matrices (``scenarios``), inverse links (``links``), the numba kernels that push
coefficient draws through the rows (``kernels``; several scenarios in one pass:
``scenario_kernels``; the delta method's row passes: ``moments``), the delta method and κ
(``delta``), and
the evaluation that ties them together for one request (``evaluate``).

May import: numpy/pandas/numba/scipy and the shared ``simmargins._errors``/``_validate``
only. Knows nothing of statsmodels fits, sessions, results or the command line.
"""
