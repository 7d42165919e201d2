# Reference values for alliance-stats' mixed models (als.lmm) from lme4 + lmerTest.
#
# Regenerate from the repository root:
#   python tests/reference/make_lmm_data.py      # the simulated data sets (lmm_small/large.csv.gz)
#   Rscript tests/reference/make_lmm_reference.R
# Needs (Debian): apt-get install r-base-core r-cran-lme4 r-cran-lmertest
# Models are listed in lmm_models.csv (shared with tests/test_mixed_reference.py).
# lmer's defaults are used except a tighter optimizer tolerance, so that the reference sits at the
# optimum to the precision compared (the comparison is of optima, not of optimizer paths).
suppressMessages({library(lme4); library(lmerTest)})
here <- "tests/reference"
write.csv(lme4::sleepstudy, file.path(here, "lmm_sleepstudy.csv"), row.names = FALSE)
data <- list(
  sleepstudy = lme4::sleepstudy,
  small = read.csv(file.path(here, "lmm_small.csv.gz")),
  large = read.csv(file.path(here, "lmm_large.csv.gz"))
)
for (nm in c("small", "large")) {
  data[[nm]]$therapist <- factor(data[[nm]]$therapist)
  data[[nm]]$patient <- factor(data[[nm]]$patient)
}
models <- read.csv(file.path(here, "lmm_models.csv"), stringsAsFactors = FALSE)
ctrl <- lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-10, maxfun = 1e5))
fixed <- list(); random <- list(); fit <- list(); blups <- list()
for (i in seq_len(nrow(models))) {
  m <- models[i, ]
  f <- lmer(as.formula(m$formula), data = data[[m$data]], REML = as.logical(m$reml), control = ctrl)
  ct <- summary(f)$coefficients
  fixed[[i]] <- data.frame(id = m$id, term = sub("^\\(Intercept\\)$", "Intercept", rownames(ct)),
                           estimate = ct[, "Estimate"], se = ct[, "Std. Error"], df = ct[, "df"],
                           t = ct[, "t value"], p = ct[, "Pr(>|t|)"])
  vc <- as.data.frame(VarCorr(f))
  vc$var1 <- sub("^\\(Intercept\\)$", "Intercept", vc$var1)
  vc$var2 <- sub("^\\(Intercept\\)$", "Intercept", vc$var2)
  random[[i]] <- data.frame(id = m$id, grp = vc$grp, var1 = vc$var1, var2 = vc$var2, vcov = vc$vcov, sdcor = vc$sdcor)
  if (m$id %in% c("sleep_rs", "three_wai", "three_wai_slope")) {
    re <- as.data.frame(ranef(f, condVar = TRUE))
    re$term <- sub("^\\(Intercept\\)$", "Intercept", re$term)
    blups[[length(blups) + 1]] <- data.frame(id = m$id, grp = re$grpvar, level = re$grp, term = re$term,
                                             estimate = re$condval, cond_sd = re$condsd)
  }
  fit[[i]] <- data.frame(id = m$id, loglik = as.numeric(logLik(f)), n = nobs(f), singular = isSingular(f),
                         theta = paste(format(getME(f, "theta"), digits = 12), collapse = " "))
}
opt <- function(x) format(x, digits = 12)
write.csv(do.call(rbind, fixed), file.path(here, "lmm_reference_fixed.csv"), row.names = FALSE)
write.csv(do.call(rbind, random), file.path(here, "lmm_reference_random.csv"), row.names = FALSE)
write.csv(do.call(rbind, blups), file.path(here, "lmm_reference_ranef.csv"), row.names = FALSE)
write.csv(do.call(rbind, fit), file.path(here, "lmm_reference_fit.csv"), row.names = FALSE)
cat(sprintf("lme4 %s, lmerTest %s, %s\n", packageVersion("lme4"), packageVersion("lmerTest"), R.version.string),
    file = file.path(here, "lmm_reference_versions.txt"))
