# Reference values for alliance_stats.lmm(..., residuals = "ar1", time = ...), from nlme.
#
# Regenerate (from the repository root):
#   apt-get install r-base-core r-cran-nlme r-cran-jsonlite
#   python tests/reference/make_ar1_data.py      # the package's scored sample (ar1_sample.csv)
#   Rscript tests/reference/make_ar1_reference.R
#
# Inputs: ar1_sample.csv (the package's synthetic sample sessions, scored, alliance split into
#   its lagged within-patient part and patient mean by als.decompose); nlme::Ovary (public
#   dataset of nlme), written here to ar1_ovary.csv with sin/cos of 2 pi Time and obs, the
#   position of the row within its Mare (corAR1(form = ~ 1 | Mare) correlates by position).
# Outputs:
#   ar1_reference.json  per model and REML/ML: logLik, AIC, BIC, phi (corAR1's Phi), sigma,
#       fixed effects and their SEs (sqrt(diag(vcov))), the random-effect covariance matrices
#       per level (sigma^2 x pdMatrix, innermost level first), the fitted values at the
#       innermost level (X beta + Z b), and the same model's iid fit (no correlation):
#       logLik, AIC.
#   ar1_ovary.csv, ar1_versions.txt
# nlme is converged tightly (lmeControl below); nlme's t tests use containment df, not
# Satterthwaite's, so no df are stored.
suppressPackageStartupMessages({library(nlme); library(jsonlite)})
here <- "tests/reference"
ctrl <- lmeControl(maxIter = 500, msMaxIter = 500, msMaxEval = 5000, niterEM = 100, tolerance = 1e-10,
                   msTol = 1e-12, returnObject = FALSE)

sample <- read.csv(file.path(here, "ar1_sample.csv"))
ov <- as.data.frame(Ovary)
ov$Mare <- as.integer(as.character(ov$Mare))
ov$obs <- ave(seq_len(nrow(ov)), ov$Mare, FUN = seq_along)
ov$sin_t <- sin(2 * pi * ov$Time)
ov$cos_t <- cos(2 * pi * ov$Time)
write.csv(ov[, c("Mare", "Time", "obs", "sin_t", "cos_t", "follicles")], file.path(here, "ar1_ovary.csv"), row.names = FALSE)

models <- list(
  # the model of issue #17: phi = .25, LR = 60.7, AIC 7779 -> 7721 (REML)
  sample_lag = list(data = "sample", formula = "phq9_total ~ wai_sr_total_within_lag1 + wai_sr_total_between + session + (1 | patient)",
                    fixed = phq9_total ~ wai_sr_total_within_lag1 + wai_sr_total_between + session, random = ~ 1 | patient,
                    cor = corAR1(form = ~ session | patient)),
  sample_slope = list(data = "sample", formula = "phq9_total ~ session + (1 + session | patient)",
                      fixed = phq9_total ~ session, random = ~ session | patient, cor = corAR1(form = ~ session | patient)),
  sample_nested = list(data = "sample", formula = "phq9_total ~ wai_sr_total + session + (1 | therapist/patient)",
                       fixed = phq9_total ~ wai_sr_total + session, random = ~ 1 | therapist/patient,
                       cor = corAR1(form = ~ session | therapist/patient)),
  ovary = list(data = "ovary", formula = "follicles ~ sin_t + cos_t + (1 | Mare)", time = "obs",
               fixed = follicles ~ sin_t + cos_t, random = ~ 1 | Mare, cor = corAR1(form = ~ 1 | Mare))
)

out <- list()
for (nm in names(models)) {
  s <- models[[nm]]
  d <- if (s$data == "sample") sample else ov
  vars <- unique(c(all.vars(s$fixed), all.vars(s$random), "session"[s$data == "sample"]))
  d <- d[complete.cases(d[, vars]), ]
  for (method in c("REML", "ML")) {
    m <- lme(s$fixed, data = d, random = s$random, correlation = s$cor, method = method, control = ctrl)
    m0 <- lme(s$fixed, data = d, random = s$random, method = method, control = ctrl)
    sig <- m$sigma
    covs <- rev(lapply(pdMatrix(m$modelStruct$reStruct), function(p) unname(p * sig^2)))
    covs <- lapply(covs, function(S) lapply(seq_len(nrow(S)), function(i) S[i, ]))
    out[[paste(nm, method, sep = "_")]] <- list(
      formula = s$formula, data = s$data, time = if (is.null(s$time)) "session" else s$time, reml = method == "REML",
      n = nrow(d), logLik = as.numeric(logLik(m)), AIC = AIC(m), BIC = BIC(m),
      phi = unname(coef(m$modelStruct$corStruct, unconstrained = FALSE)), sigma = sig,
      fixef = as.list(fixef(m)), se = as.list(sqrt(diag(vcov(m)))),
      covs = covs, fitted = unname(fitted(m)),
      iid_logLik = as.numeric(logLik(m0)), iid_AIC = AIC(m0), iid_BIC = BIC(m0)
    )
  }
}
writeLines(toJSON(out, digits = I(15), auto_unbox = TRUE, pretty = TRUE), file.path(here, "ar1_reference.json"))
writeLines(c(R.version.string, paste("nlme", packageVersion("nlme")), paste("jsonlite", packageVersion("jsonlite"))),
           file.path(here, "ar1_versions.txt"))
