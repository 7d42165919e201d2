# lme4 reference fits for the optimizer tests (tests/test_lmm_optimizer.py).
#
# Regenerate from the repository root:
#   python tests/reference/make_lmm_optimizer_data.py   # lmm_optimizer_data.csv.gz, lmm_optimizer_models.csv
#   Rscript tests/reference/make_lmm_optimizer_reference.R
# Each model is fitted twice: lmer's default (nloptwrap BOBYQA) and minqa's bobyqa with a tight
# final trust radius (rhoend 1e-12). The fit with the higher log-likelihood is the reference
# (column `control` says which); both log-likelihoods are kept.
suppressMessages({library(lme4)})
here <- "tests/reference"
all_data <- read.csv(file.path(here, "lmm_optimizer_data.csv.gz"))
models <- read.csv(file.path(here, "lmm_optimizer_models.csv"), stringsAsFactors = FALSE)
tight <- lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12, maxfun = 1e5))
fit <- list(); fixed <- list(); random <- list()
for (i in seq_len(nrow(models))) {
  m <- models[i, ]
  d <- all_data[all_data$data == m$data, ]
  d$session <- d$session + m$shift
  d$patient <- factor(d$patient)
  f_def <- suppressMessages(suppressWarnings(lmer(as.formula(m$formula), data = d, REML = as.logical(m$reml))))
  f_tight <- suppressMessages(suppressWarnings(lmer(as.formula(m$formula), data = d, REML = as.logical(m$reml), control = tight)))
  ll <- c(default = as.numeric(logLik(f_def)), tight = as.numeric(logLik(f_tight)))
  best <- if (ll[["tight"]] >= ll[["default"]]) f_tight else f_def
  ct <- summary(best)$coefficients
  fixed[[i]] <- data.frame(id = m$id, term = sub("^\\(Intercept\\)$", "Intercept", rownames(ct)),
                           estimate = ct[, "Estimate"], se = ct[, "Std. Error"])
  vc <- as.data.frame(VarCorr(best))
  vc$var1 <- sub("^\\(Intercept\\)$", "Intercept", vc$var1)
  vc$var2 <- sub("^\\(Intercept\\)$", "Intercept", vc$var2)
  random[[i]] <- data.frame(id = m$id, grp = vc$grp, var1 = vc$var1, var2 = vc$var2, vcov = vc$vcov, sdcor = vc$sdcor)
  fit[[i]] <- data.frame(id = m$id, loglik = max(ll), loglik_default = ll[["default"]], loglik_tight = ll[["tight"]],
                         control = if (ll[["tight"]] >= ll[["default"]]) "bobyqa rhoend=1e-12" else "default",
                         feval_default = f_def@optinfo$feval, n = nobs(best), singular = isSingular(best),
                         theta = paste(format(getME(best, "theta"), digits = 15), collapse = " "))
}
write.csv(do.call(rbind, fit), file.path(here, "lmm_optimizer_reference_fit.csv"), row.names = FALSE)
write.csv(do.call(rbind, fixed), file.path(here, "lmm_optimizer_reference_fixed.csv"), row.names = FALSE)
write.csv(do.call(rbind, random), file.path(here, "lmm_optimizer_reference_random.csv"), row.names = FALSE)
cat(sprintf("lme4 %s, nloptr %s, minqa %s, %s\n", packageVersion("lme4"), packageVersion("nloptr"),
            packageVersion("minqa"), R.version.string), file = file.path(here, "lmm_optimizer_reference_versions.txt"))
