# Reference values for alliance_stats.response_surface(), apim() and the key-reversal check
# of reliability(), from R.
#
# Regenerate (from the repository root):
#   apt-get install r-base-core r-cran-lme4 r-cran-lmertest r-cran-nlme r-cran-psych
#   python tests/reference/make_agreement_data.py      # the synthetic inputs
#   Rscript tests/reference/make_agreement_reference.R
#
# Inputs (synthetic, see make_agreement_data.py): agreement_rsa.csv, agreement_rsa_ml.csv,
#   agreement_apim.csv, agreement_apim_incomplete.csv; psych::bfi (public dataset of psych).
# Outputs:
#   agreement_rsa_reference.csv   polynomial regression (lm; lmer + lmerTest for the
#       multilevel model), the surface parameters a1-a5 (linear combinations: SE from the
#       coefficient covariance, t with the residual df for lm and Satterthwaite df from
#       lmerTest::contest1D for lmer) and the stationary point / principal axes by Edwards'
#       (2002) formulas with delta-method SEs (exact gradients from R's deriv(), normal CIs).
#       The RSA package is not installable here (no Debian package), so the surface
#       parameters are computed from their definitions (Shanock et al. 2010; Schoenbrodt's
#       RSA::RSA.ST uses the same formulas).
#   agreement_apim_reference.csv  nlme::gls two-intercept APIM (Kenny, Kashy & Cook 2006):
#       coefficients, residual SDs per role, residual correlation, log-likelihood, intervals()
#       of the variance parameters from gls' apVar, anova(L=) tests of equal actor and
#       partner effects, and the REML likelihood-ratio test of the residual correlation.
#   agreement_apim_partner.csv    the partner scores built by merging the long table
#       (checks als.partner_scores).
#   agreement_bfi_rdrop.csv       psych::alpha r.drop of bfi Agreeableness A1-A5 with A1
#       NOT reversed (a key lacking a reversal): A1's corrected item-total r is negative.
#   agreement_versions.txt
suppressPackageStartupMessages({library(lme4); library(lmerTest); library(nlme); library(psych)})
here <- "tests/reference"
out <- list()
row <- function(model, parameter, estimate, se = NA, df = NA, statistic = NA, p = NA, lo = NA, hi = NA)
  data.frame(model = model, parameter = parameter, estimate = estimate, se = se, df = df,
             statistic = statistic, p = p, ci_low = lo, ci_high = hi)

# ---- response surface ------------------------------------------------------------------
# Edwards (2002) / RSA.ST formulas as expressions in b0..b5 (stationary point, principal axes)
den <- "(4*b3*b5 - b4^2)"
X0 <- sprintf("((b2*b4 - 2*b1*b5)/%s)", den)
Y0 <- sprintf("((b1*b4 - 2*b2*b3)/%s)", den)
p11 <- "((b5 - b3 + sqrt((b3 - b5)^2 + b4^2))/b4)"
p21 <- "((b5 - b3 - sqrt((b3 - b5)^2 + b4^2))/b4)"
nonlin <- list(
  X0 = X0, Y0 = Y0,
  Z0 = sprintf("b0 + b1*%1$s + b2*%2$s + b3*%1$s^2 + b4*%1$s*%2$s + b5*%2$s^2", X0, Y0),
  p10 = sprintf("%s - %s*%s", Y0, p11, X0), p11 = p11,
  p20 = sprintf("%s - %s*%s", Y0, p21, X0), p21 = p21)
bn <- paste0("b", 0:5)
L <- rbind(a1 = c(0, 1, 1, 0, 0, 0), a2 = c(0, 0, 0, 1, 1, 1), a3 = c(0, 1, -1, 0, 0, 0),
           a4 = c(0, 0, 0, 1, -1, 1), a5 = c(0, 0, 0, 1, 0, -1))

surface <- function(model, b, V, lin_df_fun) {
  names(b) <- bn
  res <- list()
  for (a in rownames(L)) {
    r <- lin_df_fun(L[a, ])
    res[[a]] <- row(model, a, r$est, r$se, r$df, r$est / r$se, 2 * pt(-abs(r$est / r$se), r$df),
                    r$est - qt(.975, r$df) * r$se, r$est + qt(.975, r$df) * r$se)
  }
  env <- as.list(b)
  for (nm in names(nonlin)) {
    e <- parse(text = nonlin[[nm]])[[1]]
    est <- eval(e, env)
    g <- sapply(bn, function(v) eval(D(e, v), env))
    se <- sqrt(drop(t(g) %*% V %*% g))
    res[[nm]] <- row(model, nm, est, se, Inf, est / se, 2 * pnorm(-abs(est / se)),
                     est - qnorm(.975) * se, est + qnorm(.975) * se)
  }
  do.call(rbind, res)
}

rsa <- read.csv(file.path(here, "agreement_rsa.csv"))
for (cen in c("midpoint", "mean")) {
  m <- if (cen == "midpoint") 3 else mean(c(rsa$client_wai, rsa$therapist_wai))
  d <- data.frame(z = rsa$outcome, x = rsa$client_wai - m, y = rsa$therapist_wai - m)
  fit <- lm(z ~ x + y + I(x^2) + I(x*y) + I(y^2), data = d)
  b <- coef(fit); V <- vcov(fit); dfr <- df.residual(fit)
  model <- paste0("ols_", cen)
  cf <- summary(fit)$coefficients
  ci <- confint(fit)
  out[[model]] <- rbind(
    row(model, "center", m), row(model, "n", nobs(fit)), row(model, "sigma", sigma(fit)),
    row(model, "r2", summary(fit)$r.squared),
    row(model, bn, b, cf[, 2], dfr, cf[, 3], cf[, 4], ci[, 1], ci[, 2]),
    surface(model, b, V, function(l) list(est = sum(l * b), se = sqrt(drop(t(l) %*% V %*% l)), df = dfr)))
  if (cen == "midpoint") {
    Vd <- as.data.frame(V); names(Vd) <- bn; Vd$term <- bn
    write.csv(Vd, file.path(here, "agreement_rsa_vcov.csv"), row.names = FALSE)
  }
}

ml <- read.csv(file.path(here, "agreement_rsa_ml.csv"))
d <- data.frame(z = ml$outcome, x = ml$client_wai - 3, y = ml$therapist_wai - 3, patient = factor(ml$patient))
fit <- lmerTest::lmer(z ~ x + y + I(x^2) + I(x*y) + I(y^2) + (1 | patient), data = d, REML = TRUE,
                      control = lmerControl(optimizer = "bobyqa", optCtrl = list(rhobeg = 2e-4, rhoend = 1e-12, maxfun = 1e5)))
b <- fixef(fit); V <- as.matrix(vcov(fit))
cf <- summary(fit)$coefficients
model <- "lmer"
out[[model]] <- rbind(
  row(model, "n", nobs(fit)), row(model, "sigma", sigma(fit)),
  row(model, "patient_sd", attr(VarCorr(fit)$patient, "stddev")),
  row(model, "reml_loglik", as.numeric(logLik(fit))),
  row(model, bn, b, cf[, 2], cf[, 3], cf[, 4], cf[, 5], b - qt(.975, cf[, 3]) * cf[, 2], b + qt(.975, cf[, 3]) * cf[, 2]),
  surface(model, b, V, function(l) {
    ct <- lmerTest::contest1D(fit, l)
    list(est = ct$Estimate, se = ct$`Std. Error`, df = ct$df)
  }))
write.csv(do.call(rbind, out), file.path(here, "agreement_rsa_reference.csv"), row.names = FALSE)

# ---- APIM --------------------------------------------------------------------------------
partner <- function(lng) {
  p <- lng[, c("dyad", "role", "alliance")]
  names(p)[3] <- "partner"
  p$role <- ifelse(p$role == "client", "therapist", "client")
  d <- merge(lng, p, by = c("dyad", "role"), all.x = TRUE)
  d <- d[order(d$dyad, d$role), ]
  d$role <- factor(d$role)
  d
}
ctrl <- glsControl(maxIter = 500, msMaxIter = 1000, tolerance = 1e-12, msTol = 1e-14, returnObject = TRUE)
apim_rows <- list(); partner_rows <- list()
for (dataset in c("apim", "apim_incomplete")) {
  lng <- read.csv(file.path(here, paste0("agreement_", dataset, ".csv")))
  d <- partner(lng)
  partner_rows[[dataset]] <- data.frame(dataset = dataset, dyad = d$dyad, role = d$role, partner = d$partner)
  for (meth in c("REML", "ML")) {
    fit <- gls(outcome ~ 0 + role + role:alliance + role:partner, data = d, method = meth,
               correlation = corSymm(form = ~ 1 | dyad), weights = varIdent(form = ~ 1 | role),
               na.action = na.omit, control = ctrl)
    model <- paste(dataset, meth, sep = "_")
    s <- summary(fit)$tTable
    dfr <- fit$dims$N - fit$dims$p
    se <- s[, 2]
    est <- s[, 1]
    r <- list(row(model, rownames(s), est, se, dfr, s[, 3], s[, 4], est - qt(.975, dfr) * se, est + qt(.975, dfr) * se))
    vf <- coef(fit$modelStruct$varStruct, unconstrained = FALSE, allCoef = TRUE)
    rho <- coef(fit$modelStruct$corStruct, unconstrained = FALSE)
    iv <- intervals(fit, which = "var-cov")
    r[[length(r) + 1]] <- row(model, paste0("sigma_", names(vf)), fit$sigma * vf)
    r[[length(r) + 1]] <- row(model, "rho", rho, lo = iv$corStruct[1, "lower"], hi = iv$corStruct[1, "upper"])
    r[[length(r) + 1]] <- row(model, "sigma_ref", fit$sigma, lo = iv$sigma["lower"], hi = iv$sigma["upper"])
    r[[length(r) + 1]] <- row(model, "sd_ratio", iv$varStruct[1, "est."], lo = iv$varStruct[1, "lower"], hi = iv$varStruct[1, "upper"])
    r[[length(r) + 1]] <- row(model, "loglik", as.numeric(logLik(fit)))
    r[[length(r) + 1]] <- row(model, "n_obs", fit$dims$N)
    av <- fit$apVar
    r[[length(r) + 1]] <- row(model, paste0("apvar_", c("11", "12", "13", "22", "23", "33")),
                              av[upper.tri(av, diag = TRUE)][c(1, 2, 4, 3, 5, 6)])
    cn <- names(coef(fit))
    Lm <- function(w) { v <- setNames(rep(0, length(cn)), cn); v[names(w)] <- w; v }
    La <- Lm(c("roleclient:alliance" = 1, "roletherapist:alliance" = -1))
    Lp <- Lm(c("roleclient:partner" = 1, "roletherapist:partner" = -1))
    for (tst in list(list("equal_actor", rbind(La)), list("equal_partner", rbind(Lp)),
                     list("equal_actor_and_partner", rbind(La, Lp)))) {
      an <- anova(fit, L = tst[[2]])
      r[[length(r) + 1]] <- row(model, paste0("test_", tst[[1]]), NA, NA, dfr, an[["F-value"]], an[["p-value"]])
    }
    fit0 <- gls(outcome ~ 0 + role + role:alliance + role:partner, data = d, method = meth,
                weights = varIdent(form = ~ 1 | role), na.action = na.omit, control = ctrl)
    lr <- 2 * (as.numeric(logLik(fit)) - as.numeric(logLik(fit0)))
    r[[length(r) + 1]] <- row(model, "test_rho_zero", lr, df = 1, statistic = lr, p = pchisq(lr, 1, lower.tail = FALSE))
    r[[length(r) + 1]] <- row(model, "loglik_rho_zero", as.numeric(logLik(fit0)))
    apim_rows[[model]] <- do.call(rbind, r)
  }
}
write.csv(do.call(rbind, apim_rows), file.path(here, "agreement_apim_reference.csv"), row.names = FALSE)
write.csv(do.call(rbind, partner_rows), file.path(here, "agreement_apim_partner.csv"), row.names = FALSE)

# ---- key check: corrected item-total r (psych's r.drop) with a reversal left out ---------------
agree <- read.csv(file.path(here, "reliability_bfi_agreeableness.csv"))
a <- psych::alpha(agree, check.keys = FALSE, warnings = FALSE)
write.csv(data.frame(item = rownames(a$item.stats), r_drop = a$item.stats$r.drop),
          file.path(here, "agreement_bfi_rdrop.csv"), row.names = FALSE)

writeLines(c(R.version.string, paste("lme4", packageVersion("lme4")), paste("lmerTest", packageVersion("lmerTest")),
             paste("nlme", packageVersion("nlme")), paste("psych", packageVersion("psych"))),
           file.path(here, "agreement_versions.txt"))
