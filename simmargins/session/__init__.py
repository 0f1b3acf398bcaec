"""The session: ``Margins`` and what its verbs orchestrate.

``margins`` holds the class and its verbs; ``checks`` the checks of the fit and of the
arguments; ``coefficients`` how draws are made (simulation or bootstrap); ``assemble``
how an evaluation becomes a result Dataset.

May import: adapters, resampling, engine, results and the shared modules.
"""
