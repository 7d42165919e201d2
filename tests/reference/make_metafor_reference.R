# Reference values for alliance_stats.meta_analysis(), from R's metafor package.
#
# Regenerate (from the repository root):
#   apt-get install r-base-core r-cran-metafor
#   Rscript tests/reference/make_metafor_reference.R
#
# Datasets (written next to this script so the Python tests read exactly the same data):
#   metadat::dat.molloy2014           correlations (ri, ni), k = 16, moderators meanage, quality
#   metadat::dat.mcdaniel1994         correlations (ri, ni), k = 160
#   metadat::dat.konstantopoulos2011  generic yi/vi, schools nested in districts (three-level)
#   sample_data/meta_alliance_outcome.csv  the package's synthetic alliance-outcome table
# Output: tests/reference/metafor_reference.csv (long format: dataset, analysis, quantity, i, value)
#
# Convergence: metafor's default stopping rules end the iterations short of the optimum by up
# to ~1e-4 relative (REML/ML Fisher scoring stops when tau2 changes by < 1e-5; Paule-Mandel's
# uniroot uses tol = .Machine$double.eps^0.25). Checked on dat.molloy2014 / dat.mcdaniel1994:
# the default REML tau2 has a lower restricted log-likelihood than the converged one, and the
# default PM tau2 leaves Q - (k - 1) = -0.05 instead of 0. The reference is therefore metafor's
# converged answer, with the tolerances below; with defaults it agrees within 1e-3.
suppressPackageStartupMessages(library(metafor))
ctrl <- list(threshold = 1e-12, tol = 1e-12, maxiter = 10000)
ctrl_mv <- list(optimizer = "optim", optmethod = "BFGS", reltol = 1e-14, maxit = 10000)
here <- "tests/reference"
out <- list()
put <- function(dataset, analysis, quantity, value) {
  if (length(value) == 0) stop(sprintf("%s %s %s is empty", dataset, analysis, quantity))
  value <- as.numeric(value)
  out[[length(out) + 1]] <<- data.frame(dataset = dataset, analysis = analysis, quantity = quantity,
                                         i = seq_along(value), value = value)
}

molloy <- dat.molloy2014[, c("authors", "year", "ni", "ri", "controls", "design", "meanage", "quality")]
write.csv(molloy, file.path(here, "meta_molloy2014.csv"), row.names = FALSE)
mcd <- dat.mcdaniel1994[, c("study", "ni", "ri", "type", "struct")]
write.csv(mcd, file.path(here, "meta_mcdaniel1994.csv"), row.names = FALSE)
kon <- dat.konstantopoulos2011[, c("district", "school", "year", "yi", "vi")]
write.csv(kon, file.path(here, "meta_konstantopoulos2011.csv"), row.names = FALSE)
alli <- read.csv("sample_data/meta_alliance_outcome.csv")

cor_sets <- list(molloy2014 = molloy, mcdaniel1994 = mcd, alliance_sample = alli)
if (is.null(alli$ri)) alli$ri <- alli$r
for (nm in names(cor_sets)) {
  d <- cor_sets[[nm]]
  if (is.null(d$ri)) { d$ri <- d$r; d$ni <- d$n }
  d <- escalc(measure = "ZCOR", ri = ri, ni = ni, data = d)
  for (m in c("REML", "ML", "DL", "PM", "HE", "EE")) {
    res <- rma(yi, vi, data = d, method = m, control = ctrl)
    p <- predict(res)
    a <- paste0("uni_", m)
    put(nm, a, "b", res$beta); put(nm, a, "se", res$se); put(nm, a, "zval", res$zval)
    put(nm, a, "pval", res$pval); put(nm, a, "ci_lb", res$ci.lb); put(nm, a, "ci_ub", res$ci.ub)
    put(nm, a, "tau2", res$tau2); put(nm, a, "I2", res$I2); put(nm, a, "H2", res$H2)
    put(nm, a, "QE", res$QE); put(nm, a, "QEp", res$QEp)
    if (m != "EE") { put(nm, a, "pi_lb", p$pi.lb); put(nm, a, "pi_ub", p$pi.ub) }
  }
  res <- rma(yi, vi, data = d, method = "REML", test = "knha", control = ctrl)
  p <- predict(res)
  put(nm, "knha_REML", "b", res$beta); put(nm, "knha_REML", "se", res$se)
  put(nm, "knha_REML", "tval", res$zval); put(nm, "knha_REML", "df", res$ddf)
  put(nm, "knha_REML", "pval", res$pval); put(nm, "knha_REML", "ci_lb", res$ci.lb)
  put(nm, "knha_REML", "ci_ub", res$ci.ub); put(nm, "knha_REML", "pi_lb", p$pi.lb)
  put(nm, "knha_REML", "pi_ub", p$pi.ub)

  res <- rma(yi, vi, data = d, method = "REML", control = ctrl)
  eg <- regtest(res)                      # default: model = "rma", predictor = "sei"
  put(nm, "egger_rma", "zval", eg$zval); put(nm, "egger_rma", "pval", eg$pval); put(nm, "egger_rma", "limit", eg$est)
  eg <- regtest(res, model = "lm")        # classic Egger: weighted least squares with dispersion
  put(nm, "egger_lm", "tval", eg$zval); put(nm, "egger_lm", "pval", eg$pval); put(nm, "egger_lm", "df", eg$dfs)
  for (m in c("REML", "EE")) {
    tf <- trimfill(rma(yi, vi, data = d, method = m, control = ctrl), control = ctrl)
    a <- paste0("trimfill_", m)
    put(nm, a, "k0", tf$k0); put(nm, a, "side_right", tf$side == "right")
    put(nm, a, "b", tf$beta); put(nm, a, "se", tf$se); put(nm, a, "tau2", tf$tau2)
  }
  l1 <- leave1out(res)
  put(nm, "leave1out", "estimate", l1$estimate); put(nm, "leave1out", "se", l1$se)
  put(nm, "leave1out", "tau2", l1$tau2); put(nm, "leave1out", "I2", l1$I2); put(nm, "leave1out", "QE", l1$Q)
  put(nm, "weights_REML", "w", weights(res))
}

# meta-regression
d <- escalc(measure = "ZCOR", ri = ri, ni = ni, data = molloy)
for (tst in c("z", "knha")) {
  res <- rma(yi, vi, mods = ~ meanage + quality, data = d, method = "REML", test = tst, control = ctrl)
  a <- paste0("metareg_", tst)
  put("molloy2014", a, "b", res$beta); put("molloy2014", a, "se", res$se)
  put("molloy2014", a, "QM", res$QM); put("molloy2014", a, "QMp", res$QMp)
  put("molloy2014", a, "tau2", res$tau2); put("molloy2014", a, "I2", res$I2)
  put("molloy2014", a, "QE", res$QE); put("molloy2014", a, "R2", res$R2)
}
d <- escalc(measure = "ZCOR", ri = r, ni = n, data = alli)
res <- rma(yi, vi, mods = ~ rater + year, data = d, method = "REML", control = ctrl)   # R sorts factor levels
put("alliance_sample", "metareg_z", "b", res$beta); put("alliance_sample", "metareg_z", "se", res$se)
put("alliance_sample", "metareg_z", "QM", res$QM); put("alliance_sample", "metareg_z", "QMp", res$QMp)
put("alliance_sample", "metareg_z", "tau2", res$tau2)

# three-level models and I2 per level (Cheung 2014; metafor's FAQ formula)
three <- function(nm, d, random) {
  res <- rma.mv(yi, vi, random = random, data = d, method = "REML", control = ctrl_mv)
  W <- diag(1 / d$vi); X <- model.matrix(res)
  P <- W - W %*% X %*% solve(t(X) %*% W %*% X) %*% t(X) %*% W
  denom <- sum(res$sigma2) + (res$k - res$p) / sum(diag(P))
  put(nm, "threelevel", "b", res$beta); put(nm, "threelevel", "se", res$se)
  put(nm, "threelevel", "zval", res$zval); put(nm, "threelevel", "pval", res$pval)
  put(nm, "threelevel", "ci_lb", res$ci.lb); put(nm, "threelevel", "ci_ub", res$ci.ub)
  put(nm, "threelevel", "sigma2", res$sigma2); put(nm, "threelevel", "QE", res$QE)
  put(nm, "threelevel", "logLik", logLik(res)); put(nm, "threelevel", "I2_level", 100 * res$sigma2 / denom)
  p <- predict(res)
  put(nm, "threelevel", "pi_lb", p$pi.lb); put(nm, "threelevel", "pi_ub", p$pi.ub)
}
three("konstantopoulos2011", kon, ~ 1 | district/school)
da <- escalc(measure = "ZCOR", ri = r, ni = n, data = alli)
three("alliance_sample", da, ~ 1 | study/es_id)

# aggregating dependent effects within studies (compound symmetry, rho = .5, GLS weights)
ag <- aggregate(da, cluster = study, struct = "CS", rho = 0.5)
put("alliance_sample", "aggregate_gls", "yi", ag$yi); put("alliance_sample", "aggregate_gls", "vi", ag$vi)

# subgroup analyses (MetaResult.subgroups(by), the subgroup diamonds of forest_plot(group=)): the same
# model within each level; analysis = subgroup_<by>_<method>_<test>_<level>
subgroups <- function(nm, d, by, m, tst) {
  for (lev in sort(unique(as.character(d[[by]])))) {
    res <- rma(yi, vi, data = d, subset = as.character(d[[by]]) == lev, method = m, test = tst, control = ctrl)
    p <- predict(res)
    a <- paste("subgroup", by, m, tst, lev, sep = "_")
    put(nm, a, "k", res$k); put(nm, a, "b", res$beta); put(nm, a, "se", res$se); put(nm, a, "pval", res$pval)
    put(nm, a, "ci_lb", res$ci.lb); put(nm, a, "ci_ub", res$ci.ub); put(nm, a, "pi_lb", p$pi.lb)
    put(nm, a, "pi_ub", p$pi.ub); put(nm, a, "tau2", res$tau2); put(nm, a, "I2", res$I2)
    put(nm, a, "QE", res$QE); put(nm, a, "QEp", res$QEp)
  }
}
da <- escalc(measure = "ZCOR", ri = r, ni = n, data = alli)
for (m in c("REML", "DL")) subgroups("alliance_sample", da, "rater", m, "z")
subgroups("alliance_sample", da, "rater", "REML", "knha")
dm <- escalc(measure = "ZCOR", ri = ri, ni = ni, data = mcd[!is.na(mcd$type), ])
subgroups("mcdaniel1994", dm, "type", "REML", "z")

res <- do.call(rbind, out)
write.csv(res, file.path(here, "metafor_reference.csv"), row.names = FALSE)
cat(sprintf("metafor %s: %d reference values\n", as.character(packageVersion("metafor")), nrow(res)))
