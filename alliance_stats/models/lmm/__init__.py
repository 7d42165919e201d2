"""Linear mixed models with lme4's formulation and answers: ``als.lmm`` and ``als.compare``.

One module per stage, as lme4 (``lFormula -> mkLmerDevfun -> optimizeLmer -> mkMerMod``):
``formula`` (lme4 syntax), ``design`` (model frame and matrices), ``nested`` (the profiled
deviance of nested designs from per-group sufficient statistics), ``crossed`` (the profiled
deviance of crossed and partially crossed designs by a blocked Cholesky factor), ``optimize`` (theta),
``inference`` (degrees of freedom), ``result`` (:class:`LMMResult`, :func:`compare`) and ``fit``
(:func:`lmm`, which runs them in order). ``statsmodels`` is the optional second engine.
``glmm`` fits generalized linear mixed models (binomial, Poisson) as lme4's ``glmer``, reusing
the formula and design stages.
"""

from .fit import all_fit, lmm
from .glmm import GLMMResult, glmm
from .result import LMMResult, ModelComparison, compare

__all__ = ["lmm", "all_fit", "LMMResult", "compare", "ModelComparison", "glmm", "GLMMResult"]
