"""Resampling: where coefficient draws come from.

Draws from N(β̂, V̂) (``draws``), bootstrap refits run in parallel and seeded per replicate
(``bootstrap``), the refit problem they share (``problem``) and the exact
sufficient-statistics refits of Gaussian mixed models: the optimiser and problem setup
(``lmm_fast``), the profiled criterion (``lmm_criterion``) and the group statistics with
their numba kernels (``lmm_stats``).

May import: the engine and the shared ``simmargins._errors``/``_validate``.
"""
