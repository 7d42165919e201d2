# lme4 reference fits for the optimizer tests (tests/test_lmm_optimizer.py).
#
# Regenerate from the repository root:
#   python tests/reference/make_lmm_optimizer_data.py   # lmm_optimizer_data.csv.gz, lmm_optimizer_models.csv
#   Rscript tests/reference/make_lmm_optimizer_reference.R
# Each model is fitted three times: lmer's default (nloptwrap BOBYQA), minqa's bobyqa with a tight
# final trust radius (rhoend 1e-12), and nloptwrap's BOBYQA with tight tolerances (ftol_abs and
# xtol_abs 1e-13, and ftol_rel, xtol_rel 1e-15 in place of nloptr's default xtol_rel 1e-4). The fit with the highest log-likelihood is the reference (column `control`
# says which); every log-likelihood is kept.
suppressMessages({library(lme4)})
here <- "tests/reference"
all_data <- read.csv(file.path(here, "lmm_optimizer_data.csv.gz"))
models <- read.csv(file.path(here, "lmm_optimizer_models.csv"), stringsAsFactors = FALSE)
tight <- lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12, maxfun = 1e5))
tight_nlopt <- lmerControl(optCtrl = list(ftol_abs = 1e-13, xtol_abs = 1e-13, ftol_rel = 1e-15, xtol_rel = 1e-15, maxeval = 1e5))
fit <- list(); fixed <- list(); random <- list()
for (i in seq_len(nrow(models))) {
  m <- models[i, ]
  d <- all_data[all_data$data == m$data, ]
  d$session <- d$session + m$shift
  d$patient <- factor(d$patient)
  f_def <- suppressMessages(suppressWarnings(lmer(as.formula(m$formula), data = d, REML = as.logical(m$reml))))
  f_tight <- suppressMessages(suppressWarnings(lmer(as.formula(m$formula), data = d, REML = as.logical(m$reml), control = tight)))
  f_tn <- suppressMessages(suppressWarnings(lmer(as.formula(m$formula), data = d, REML = as.logical(m$reml), control = tight_nlopt)))
  fits <- list(default = f_def, tight = f_tight, tight_nlopt = f_tn)
  ll <- sapply(fits, function(f) as.numeric(logLik(f)))
  best <- fits[[which.max(ll)]]
  ct <- summary(best)$coefficients
  fixed[[i]] <- data.frame(id = m$id, term = sub("^\\(Intercept\\)$", "Intercept", rownames(ct)),
                           estimate = ct[, "Estimate"], se = ct[, "Std. Error"])
  vc <- as.data.frame(VarCorr(best))
  vc$var1 <- sub("^\\(Intercept\\)$", "Intercept", vc$var1)
  vc$var2 <- sub("^\\(Intercept\\)$", "Intercept", vc$var2)
  random[[i]] <- data.frame(id = m$id, grp = vc$grp, var1 = vc$var1, var2 = vc$var2, vcov = vc$vcov, sdcor = vc$sdcor)
  fit[[i]] <- data.frame(id = m$id, loglik = max(ll), loglik_default = ll[["default"]], loglik_tight = ll[["tight"]],
                         loglik_tight_nlopt = ll[["tight_nlopt"]],
                         control = c(default = "default", tight = "bobyqa rhoend=1e-12",
                                     tight_nlopt = "nloptwrap ftol_abs=xtol_abs=1e-13")[[names(which.max(ll))]],
                         feval_default = f_def@optinfo$feval, n = nobs(best), singular = isSingular(best),
                         theta = paste(format(getME(best, "theta"), digits = 15), collapse = " "))
}
# The two traps of the issue, on the issue's data (model "issue"), from lme4's own deviance function:
# the corner theta = (0, t21, 0) (t21 minimising the deviance with both diagonal elements at 0) and
# the saddle theta = (t11, t21, 0) (minimising with the last diagonal element held at 0).
m <- models[models$id == "issue", ]
d <- all_data[all_data$data == m$data, ]
d$patient <- factor(d$patient)
dfun <- lmer(as.formula(m$formula), data = d, REML = as.logical(m$reml), devFunOnly = TRUE)
corner <- optimize(function(a) dfun(c(0, a, 0)), c(-1, 1), tol = 1e-12)
saddle <- minqa::bobyqa(c(0.4, -0.02), function(p) dfun(c(p[1], p[2], 0)), lower = c(0, -Inf),
                        control = list(rhoend = 1e-12, maxfun = 1e5))
best_theta <- as.numeric(strsplit(trimws(fit[[which(models$id == "issue")]]$theta), " +")[[1]])
points <- data.frame(id = "issue", point = c("corner", "saddle", "optimum"),
                     theta = c(paste(format(c(0, corner$minimum, 0), digits = 15), collapse = " "),
                               paste(format(c(saddle$par, 0), digits = 15), collapse = " "),
                               paste(format(best_theta, digits = 15), collapse = " ")),
                     deviance = c(corner$objective, saddle$fval, dfun(best_theta)))
write.csv(points, file.path(here, "lmm_optimizer_reference_points.csv"), row.names = FALSE)
write.csv(do.call(rbind, fit), file.path(here, "lmm_optimizer_reference_fit.csv"), row.names = FALSE)
write.csv(do.call(rbind, fixed), file.path(here, "lmm_optimizer_reference_fixed.csv"), row.names = FALSE)
write.csv(do.call(rbind, random), file.path(here, "lmm_optimizer_reference_random.csv"), row.names = FALSE)
cat(sprintf("lme4 %s, nloptr %s, minqa %s, %s\n", packageVersion("lme4"), packageVersion("nloptr"),
            packageVersion("minqa"), R.version.string), file = file.path(here, "lmm_optimizer_reference_versions.txt"))
