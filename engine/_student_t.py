"""The upper tail of Student's t distribution, in pure Python (no SciPy at run time).

:func:`student_t_sf` is ``scipy.stats.t.sf`` for the p-values of the linear-time MMD test
(:func:`engine.drift.mmd2_linear`): the regularized incomplete beta function by its continued
fraction, evaluated in 40-digit decimals where its terms cancel.

Example
-------
>>> round(student_t_sf(2.0, 5), 6)  # scipy.stats.t.sf(2.0, 5)
0.05097
"""

from __future__ import annotations

import decimal
import math

__all__ = ["student_t_sf"]


def _log_gamma_ratio(a: float) -> float:
    """``ln Gamma(a + 1/2) - ln Gamma(a)``, ``a > 0``; for large ``a`` by Stirling's series with the
    large terms cancelled by hand (a difference of two large ``lgamma`` would lose digits)."""
    if a < 20.0:
        return math.lgamma(a + 0.5) - math.lgamma(a)
    tail = [(1 / 12 - (1 / 360 - (1 / 1260 - 1 / (1680 * z * z)) / (z * z)) / (z * z)) / z for z in (a + 0.5, a)]
    return 0.5 * math.log(a) + a * math.log1p(0.5 / a) - 0.5 + tail[0] - tail[1]


def _beta_cf(a: float, b: float, x: float, y: float) -> float:
    """Continued fraction of the regularized incomplete beta ``I_x(a, b)``, ``y = 1 - x`` (each
    given to full relative precision; modified Lentz, converges fast for ``x < (a + 1) / (a + b + 2)``).
    In 40-digit decimals: for large ``a`` and ``x`` near 1 its terms cancel to about ``1 / a``
    (9 digits lost at ``a = 5e8``)."""
    with decimal.localcontext() as ctx:
        ctx.prec = 40
        one = decimal.Decimal(1)
        tiny = decimal.Decimal("1e-300")
        da, db = decimal.Decimal(a), decimal.Decimal(b)
        dx, dy = decimal.Decimal(x), decimal.Decimal(y)
        dx, dy = (dx, one - dx) if dx <= dy else (one - dy, dy)  # the smaller one is exact
        c = one
        d = ((da + one) * dy + (one - db) * dx) / (da + one)  # 1 - (a + b) x / (a + 1)
        d = one / (d if abs(d) > tiny else tiny)
        f = d
        eps = decimal.Decimal("1e-30")
        for m in range(1, 100_000):
            for num in (m * (db - m) * dx / ((da + 2 * m - 1) * (da + 2 * m)),
                        -(da + m) * (da + db + m) * dx / ((da + 2 * m) * (da + 2 * m + 1))):
                d = one + num * d
                d = one / (d if abs(d) > tiny else tiny)
                c = one + num / c
                c = c if abs(c) > tiny else tiny
                f *= c * d
            if abs(c * d - one) < eps:
                return float(f)
    raise ArithmeticError(f"incomplete beta continued fraction did not converge (a={a}, b={b}, x={x})")


def student_t_sf(t: float, df: int) -> float:
    """``P(T >= t)`` for Student's t with ``df >= 1`` degrees of freedom (``scipy.stats.t.sf``):
    ``I_x(df/2, 1/2) / 2`` with ``x = df / (df + t^2)``, by the continued fraction of whichever of
    ``I_x(df/2, 1/2)`` and ``1 - I_(1-x)(1/2, df/2)`` converges fast."""
    if t <= 0 or math.isinf(t):
        return 1.0 - student_t_sf(-t, df) if t < 0 else (0.5 if t == 0 else 0.0)
    nu, q = float(df), t * t
    a, b = 0.5 * nu, 0.5
    log_x = -math.log1p(q / nu)  # x = nu / (nu + t^2); 1 - x = t^2 / (nu + t^2)
    log_1mx = 2.0 * math.log(t) - math.log(nu + q) if q < nu else -math.log1p(nu / q)
    # ln(x^a (1-x)^b / B(a, b)), with ln B(a, 1/2) = ln Gamma(1/2) - (ln Gamma(a + 1/2) - ln Gamma(a))
    log_front = a * log_x + b * log_1mx + _log_gamma_ratio(a) - 0.5 * math.log(math.pi)
    x, y = math.exp(log_x), -math.expm1(log_x)
    if x < (a + 1.0) / (a + b + 2.0):
        return 0.5 * math.exp(log_front) * _beta_cf(a, b, x, y) / a
    return 0.5 * (1.0 - math.exp(log_front) * _beta_cf(b, a, y, x) / b)
