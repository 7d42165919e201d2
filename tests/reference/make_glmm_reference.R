# Reference values for alliance-stats' GLMMs (als.glmm) and early-alliance dropout
# (als.early_alliance_dropout) from lme4::glmer and stats::glm.
#
# Regenerate from the repository root:
#   python tests/reference/make_glmm_data.py      # simulated data (glmm_dropout_sessions.csv, glmm_slopes.csv)
#   Rscript tests/reference/make_glmm_reference.R
# Needs (Debian): apt-get install r-base-core r-cran-lme4 r-cran-numderiv
#
# glmer runs with bobyqa at rhoend = 1e-10 and a PIRLS tolerance of 1e-14 (defaults: 2e-7 and
# 1e-7): lme4 stops PIRLS on the relative change of the penalised deviance, which at 1e-12 still
# leaves the deviance ~5e-5 off on grouseticks; at 1e-14 the reference sits at the optimum. Standard errors
# are lme4's (from its finite-difference Hessian of the deviance in (theta, beta), step 1e-4);
# se_numderiv repeats them with numDeriv's Richardson-extrapolated Hessian of the same function.
# grouseticks: HEIGHT is standardised (scale(), written as HEIGHT_z), as the lme4 example's
# raw altitude in metres makes the problem badly scaled (lme4 then warns).
suppressMessages({library(lme4); library(numDeriv)})
here <- "tests/reference"
opt <- function(x) format(x, digits = 15)
ctrl <- glmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-10, maxfun = 1e5), tolPwrss = 1e-14)

cbpp <- lme4::cbpp
write.csv(cbpp, file.path(here, "glmm_cbpp.csv"), row.names = FALSE)
gt <- lme4::grouseticks
gt$HEIGHT_z <- as.numeric(scale(gt$HEIGHT))
gt$YEAR <- factor(paste0("Y", gt$YEAR))
write.csv(gt[, c("INDEX", "TICKS", "BROOD", "HEIGHT", "HEIGHT_z", "YEAR", "LOCATION")],
          file.path(here, "glmm_grouseticks.csv"), row.names = FALSE)
slopes <- read.csv(file.path(here, "glmm_slopes.csv"))

# patient-level data of the dropout design, built here from the session rows (the reference for
# als.early_alliance_dropout's own aggregation): patients rated at each of sessions 1-3
ses <- read.csv(file.path(here, "glmm_dropout_sessions.csv"))
early <- ses[ses$session %in% 1:3 & !is.na(ses$alliance), ]
n_early <- tapply(early$session, early$patient, length)
keep <- names(n_early)[n_early == 3]
pat <- do.call(rbind, lapply(split(ses, ses$patient), function(d) {
  e <- d[d$session %in% 1:3 & !is.na(d$alliance), ]
  data.frame(patient = d$patient[1], therapist = d$therapist[1], dropout = d$dropout[1],
             severity = d$severity[1], last_session = max(d$session),
             early_mean = if (nrow(e)) mean(e$alliance) else NA,
             early_slope = if (nrow(e) == 3) unname(coef(lm(alliance ~ session, e))[2]) else NA,
             n_early = nrow(e))
}))
pat$included <- pat$patient %in% keep
write.csv(pat, file.path(here, "glmm_dropout_patients.csv"), row.names = FALSE)
inc <- pat[pat$included, ]
inc$therapist <- factor(inc$therapist)

data <- list(cbpp = cbpp, grouseticks = gt, slopes = slopes, dropout = inc)
models <- list(
  cbpp_laplace = list(data = "cbpp", family = binomial, nAGQ = 1,
                      formula = cbind(incidence, size - incidence) ~ period + (1 | herd)),
  cbpp_agq25 = list(data = "cbpp", family = binomial, nAGQ = 25,
                    formula = cbind(incidence, size - incidence) ~ period + (1 | herd)),
  grouse = list(data = "grouseticks", family = poisson, nAGQ = 1,
                formula = TICKS ~ YEAR + HEIGHT_z + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)),
  slopes = list(data = "slopes", family = binomial, nAGQ = 1,
                formula = y ~ session + x + (1 + session | patient)),
  dropout_laplace = list(data = "dropout", family = binomial, nAGQ = 1,
                         formula = dropout ~ early_mean + severity + (1 | therapist)),
  dropout_agq10 = list(data = "dropout", family = binomial, nAGQ = 10,
                       formula = dropout ~ early_mean + severity + (1 | therapist))
)
saturated <- function(f) {  # log-likelihood of the saturated model (mu = y)
  y <- f@resp$y; wt <- f@resp$weights
  if (family(f)$family == "binomial") sum(dbinom(round(wt * y), round(wt), y, log = TRUE))
  else sum(dpois(y, y, log = TRUE))
}
fixed <- list(); random <- list(); fit <- list(); blups <- list()
for (id in names(models)) {
  m <- models[[id]]
  f <- glmer(m$formula, data = data[[m$data]], family = m$family, nAGQ = m$nAGQ, control = ctrl)
  ct <- summary(f)$coefficients
  th <- getME(f, "theta"); nt <- length(th)
  dev <- update(f, devFunOnly = TRUE)
  H <- numDeriv::hessian(dev, c(th, fixef(f)))
  se_nd <- sqrt(diag(2 * solve(H))[-seq_len(nt)])
  fixed[[id]] <- data.frame(id = id, term = sub("^\\(Intercept\\)$", "Intercept", rownames(ct)),
                            estimate = opt(ct[, 1]), se = opt(ct[, 2]), z = opt(ct[, 3]), p = opt(ct[, 4]),
                            se_numderiv = opt(se_nd), se_rx = opt(sqrt(diag(as.matrix(vcov(f, use.hessian = FALSE))))))
  vc <- as.data.frame(VarCorr(f))
  vc$var1 <- sub("^\\(Intercept\\)$", "Intercept", vc$var1)
  vc$var2 <- sub("^\\(Intercept\\)$", "Intercept", vc$var2)
  random[[id]] <- data.frame(id = id, grp = vc$grp, var1 = vc$var1, var2 = vc$var2, vcov = opt(vc$vcov), sdcor = opt(vc$sdcor))
  re <- as.data.frame(ranef(f, condVar = TRUE))
  re$term <- sub("^\\(Intercept\\)$", "Intercept", re$term)
  blups[[id]] <- data.frame(id = id, grp = re$grpvar, level = re$grp, term = re$term,
                            estimate = opt(re$condval), cond_sd = opt(re$condsd))
  fit[[id]] <- data.frame(id = id, loglik = opt(as.numeric(logLik(f))),
                          aic = opt(AIC(f)), bic = opt(BIC(f)), n = nobs(f),
                          saturated_loglik = opt(saturated(f)),
                          theta = paste(opt(th), collapse = " "),
                          messages = paste(c(f@optinfo$conv$lme4$messages, ""), collapse = " | "))
  if (id == "cbpp_laplace") {
    nd <- data.frame(period = factor(c("1", "2", "3", "4"), levels = levels(cbpp$period)), herd = factor("1", levels = levels(cbpp$herd)))
    pr <- data.frame(id = id, period = nd$period, link = opt(predict(f, nd, re.form = NA)),
                     response = opt(predict(f, nd, re.form = NA, type = "response")),
                     link_herd1 = opt(predict(f, nd)))
    write.csv(pr, file.path(here, "glmm_reference_predict.csv"), row.names = FALSE)
  }
}
write.csv(do.call(rbind, fixed), file.path(here, "glmm_reference_fixed.csv"), row.names = FALSE)
write.csv(do.call(rbind, random), file.path(here, "glmm_reference_random.csv"), row.names = FALSE)
write.csv(do.call(rbind, blups), file.path(here, "glmm_reference_ranef.csv"), row.names = FALSE)
write.csv(do.call(rbind, fit), file.path(here, "glmm_reference_fit.csv"), row.names = FALSE)

# ---- early alliance -> dropout (als.early_alliance_dropout) ------------------------------------
# patient level: logistic regressions (glm) and the same with a therapist random intercept (glmer)
# person-period: for included patients, sessions 3 .. last; event = left after that session;
# time-varying alliance of that session (rows without a rating left out)
pp <- do.call(rbind, lapply(split(ses[ses$patient %in% keep, ], ses$patient[ses$patient %in% keep]), function(d) {
  last <- max(d$session); dd <- d[d$session >= 3, ]
  dd$event <- as.integer(dd$session == last & dd$dropout == 1)
  dd
}))
pp_used <- pp[!is.na(pp$alliance), ]
pp_used$therapist <- factor(pp_used$therapist)
dmods <- list(
  level = list(dropout ~ early_mean + severity, inc),
  level_slope = list(dropout ~ early_mean + early_slope + severity, inc),
  hazard = list(event ~ log(session) + alliance + severity, pp_used)
)
se_numderiv <- function(f) {  # SEs from numDeriv's Hessian of the deviance in (theta, beta)
  nt <- length(getME(f, "theta"))
  H <- numDeriv::hessian(update(f, devFunOnly = TRUE), c(getME(f, "theta"), fixef(f)))
  sqrt(diag(2 * solve(H))[-seq_len(nt)])
}
out <- list(); i <- 0
for (nm in names(dmods)) {
  for (ther in c(FALSE, TRUE)) {
    fm <- dmods[[nm]][[1]]; dd <- dmods[[nm]][[2]]
    f <- if (ther) glmer(update(fm, . ~ . + (1 | therapist)), data = dd, family = binomial, control = ctrl)
         else glm(fm, data = dd, family = binomial, control = glm.control(epsilon = 1e-14, maxit = 100))
    ct <- summary(f)$coefficients
    i <- i + 1
    out[[i]] <- data.frame(model = nm, therapist = ther, term = sub("^\\(Intercept\\)$", "Intercept", rownames(ct)),
                           estimate = opt(ct[, 1]), se = opt(ct[, 2]), z = opt(ct[, 3]), p = opt(ct[, 4]),
                           loglik = opt(as.numeric(logLik(f))), n = nobs(f),
                           therapist_var = if (ther) opt(as.data.frame(VarCorr(f))$vcov[1]) else NA,
                           se_numderiv = if (ther) opt(se_numderiv(f)) else NA)
    if (nm == "level") {
      grid <- data.frame(early_mean = seq(min(inc$early_mean), max(inc$early_mean), length.out = 49),
                         severity = mean(inc$severity))
      pr <- predict(f, grid, re.form = NA)  # link scale; glm's se by hand below for both
      X <- model.matrix(~ early_mean + severity, grid)
      V <- as.matrix(vcov(f))
      se <- sqrt(rowSums((X %*% V) * X))
      write.csv(data.frame(therapist = ther, early_mean = opt(grid$early_mean), link = opt(as.numeric(pr)), se_link = opt(se)),
                file.path(here, sprintf("dropout_reference_predict_%s.csv", if (ther) "glmer" else "glm")), row.names = FALSE)
    }
    if (nm == "hazard" && !ther) {
      # model-based survival by tertile of early alliance (alliance held at the tertile's mean early
      # alliance, severity at its mean over included patients) and the observed life table
      inc$tertile <- cut(inc$early_mean, quantile(inc$early_mean, c(0, 1/3, 2/3, 1)), include.lowest = TRUE, labels = FALSE)
      tm <- tapply(inc$early_mean, inc$tertile, mean)
      sessions <- 3:max(pp$session)
      surv <- do.call(rbind, lapply(1:3, function(k) {
        h <- predict(f, data.frame(session = sessions, alliance = unname(tm[k]), severity = mean(inc$severity)), type = "response")
        ids <- inc$patient[inc$tertile == k]
        ppk <- pp[pp$patient %in% ids, ]
        at_risk <- sapply(sessions, function(s) sum(ppk$session == s))
        events <- sapply(sessions, function(s) sum(ppk$session == s & ppk$event == 1))
        data.frame(tertile = k, session = sessions, hazard_model = opt(h), survival_model = opt(cumprod(1 - h)),
                   at_risk = at_risk, events = events)
      }))
      write.csv(surv, file.path(here, "dropout_reference_survival.csv"), row.names = FALSE)
    }
  }
}
write.csv(do.call(rbind, out), file.path(here, "dropout_reference_models.csv"), row.names = FALSE)
cat(sprintf("lme4 %s, numDeriv %s, %s\n", packageVersion("lme4"), packageVersion("numDeriv"), R.version.string),
    file = file.path(here, "glmm_reference_versions.txt"))
