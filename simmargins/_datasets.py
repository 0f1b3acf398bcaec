"""Example data: the seed page's classroom data and lme4's ``sleepstudy``."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pandas as pd


def classroom_data(seed: int = 42, n_students: int = 40, per_student: int = 10) -> pd.DataFrame:
    """The classroom data of the linear-mixed-effects page, generated deterministically.

    ``score = 50 + 0.3·age − 2·female + 3·treated + u_student + e`` with
    u ~ N(0, 1) per student and e ~ N(0, 5²); ``school`` does not affect the score.

    Examples
    --------
    >>> df = classroom_data()
    >>> df.shape, list(df.columns)
    ((400, 6), ['age', 'female', 'treated', 'school', 'student', 'score'])
    """
    rng = np.random.default_rng(seed)
    n = n_students * per_student
    df = pd.DataFrame(
        {
            "age": rng.integers(20, 75, n),
            "female": rng.binomial(1, 0.52, n),
            "treated": rng.binomial(1, 0.40, n),
            "school": rng.choice(["A", "B", "C", "D"], n),
            "student": np.repeat(np.arange(n_students), per_student),
        }
    )
    student_effect = rng.standard_normal(n_students)[df["student"].to_numpy()]
    df["score"] = (
        50
        + 0.3 * df["age"]
        - 2.0 * df["female"]
        + 3.0 * df["treated"]
        + student_effect
        + rng.normal(0, 5, n)
    )
    return df


def sleepstudy_data() -> pd.DataFrame:
    """lme4's ``sleepstudy`` (Belenky et al., 2003): Reaction, Days, Subject; 180 rows.

    Examples
    --------
    >>> sleepstudy_data().shape
    (180, 3)
    """
    with resources.files("simmargins").joinpath("data/sleepstudy.csv").open("r") as fh:
        df = pd.read_csv(fh, dtype={"Subject": str})
    return df
