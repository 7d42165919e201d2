# Kenward-Roger reference values for als.lmm(..., df_method="kenward-roger"), from lmerTest's
# summary(fit, ddf = "Kenward-Roger") and contest1D(fit, L, ddf = "Kenward-Roger"), both of which
# call pbkrtest::vcovAdj (the adjusted covariance of the fixed effects) and pbkrtest::Lb_ddf.
#
# Regenerate from the repository root:
#   python tests/reference/make_kr_data.py        # the simulated alliance designs (lmm_kr_*.csv)
#   Rscript tests/reference/make_kr_reference.R
# Needs (Debian): apt-get install r-base-core r-cran-lme4 r-cran-lmertest r-cran-pbkrtest r-cran-nlme
# Models: lmm_kr_models.csv (crossed = TRUE: crossed grouping factors). Writes the R datasets used
# (lmm_kr_orthodont/ergostool/machines/pastes/penicillin.csv)
# and reads every data set back from its CSV, so that R and Python see the same columns (character
# columns become factors with levels in sorted order, as als.lmm codes them).
# Output:
#   lmm_kr_fixed.csv      per model and term: estimate, se, df, t, p (Kenward-Roger)
#   lmm_kr_contrasts.csv  per model: contrasts L (space-separated weights) with the same columns
#   lmm_kr_ddf_multi.csv  per model with 3+ coefficients: pbkrtest::Lb_ddf for a two-row L (rows ";"-separated)
#   lmm_kr_vcov.csv       per model: vcov (unadjusted) and vcov_adj (pbkrtest::vcovAdj), long format
#   lmm_kr_fit.csv        per model: REML criterion, theta, and the covariance parameters in pbkrtest's
#                         order (per random term, in lme4's order (terms), the lower triangle of its
#                         covariance column by column, then sigma^2)
suppressMessages({library(lme4); library(lmerTest); library(pbkrtest); library(nlme)})
here <- "tests/reference"
o <- nlme::Orthodont
write.csv(data.frame(distance = o$distance, age = o$age, Subject = as.character(o$Subject), Sex = as.character(o$Sex)),
          file.path(here, "lmm_kr_orthodont.csv"), row.names = FALSE)
e <- nlme::ergoStool
write.csv(data.frame(effort = e$effort, Type = as.character(e$Type), Subject = as.integer(as.character(e$Subject))),
          file.path(here, "lmm_kr_ergostool.csv"), row.names = FALSE)
m <- nlme::Machines
write.csv(data.frame(score = m$score, Machine = as.character(m$Machine), Worker = as.integer(as.character(m$Worker))),
          file.path(here, "lmm_kr_machines.csv"), row.names = FALSE)
pe <- lme4::Penicillin
write.csv(data.frame(diameter = pe$diameter, plate = as.character(pe$plate), sample = as.character(pe$sample)),
          file.path(here, "lmm_kr_penicillin.csv"), row.names = FALSE)
p <- lme4::Pastes
write.csv(data.frame(strength = p$strength, batch = as.character(p$batch), cask = as.character(p$cask)),
          file.path(here, "lmm_kr_pastes.csv"), row.names = FALSE)

rd <- function(f) read.csv(file.path(here, f), stringsAsFactors = TRUE)
data <- list(sleepstudy = rd("lmm_sleepstudy.csv"), kr_orthodont = rd("lmm_kr_orthodont.csv"),
             kr_ergostool = rd("lmm_kr_ergostool.csv"), kr_machines = rd("lmm_kr_machines.csv"),
             kr_pastes = rd("lmm_kr_pastes.csv"), kr_alliance4 = rd("lmm_kr_alliance4.csv"),
             kr_alliance12 = rd("lmm_kr_alliance12.csv"), kr_unbalanced = rd("lmm_kr_unbalanced.csv"),
             kr_penicillin = rd("lmm_kr_penicillin.csv"), kr_raters = rd("lmm_kr_raters.csv"),
             small = rd("lmm_small.csv.gz"))
models <- read.csv(file.path(here, "lmm_kr_models.csv"), stringsAsFactors = FALSE)
ctrl <- lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-10, maxfun = 1e5),
                    check.conv.singular = "ignore")
nm <- function(x) sub("^\\(Intercept\\)$", "Intercept", x)
fixed <- list(); con <- list(); vc <- list(); fit <- list(); multi <- list()
for (i in seq_len(nrow(models))) {
  mm <- models[i, ]
  f <- lmer(as.formula(mm$formula), data = data[[mm$data]], REML = TRUE, control = ctrl)
  tm <- system.time(ct <- summary(f, ddf = "Kenward-Roger")$coefficients)[["elapsed"]]
  fixed[[i]] <- data.frame(id = mm$id, term = nm(rownames(ct)), estimate = ct[, "Estimate"], se = ct[, "Std. Error"],
                           df = ct[, "df"], t = ct[, "t value"], p = ct[, "Pr(>|t|)"])
  k <- ncol(ct)
  pp <- length(fixef(f))
  Ls <- list(rep(1, pp))
  if (pp >= 3) Ls[[2]] <- c(0, 1, rep(0, pp - 3), -1)
  if (pp == 2) Ls[[2]] <- c(1, 10)
  for (L in Ls) {
    r <- contest1D(f, L, ddf = "Kenward-Roger")
    con[[length(con) + 1]] <- data.frame(id = mm$id, L = paste(L, collapse = " "), estimate = r$Estimate,
                                         se = r[["Std. Error"]], df = r$df, t = r[["t value"]], p = r[["Pr(>|t|)"]])
  }
  V0 <- as.matrix(vcov(f)); VA <- pbkrtest::vcovAdj(f)
  if (pp >= 3) {  # a two-row L: pbkrtest's Lb_ddf (the denominator df of the KR F test)
    L2 <- rbind(c(0, 1, rep(0, pp - 2)), c(0, 0, 1, rep(0, pp - 3)))
    multi[[length(multi) + 1]] <- data.frame(id = mm$id, L = paste(apply(L2, 1, paste, collapse = " "), collapse = ";"),
                                             df = pbkrtest::Lb_ddf(L2, V0, VA))
  }
  VA <- as.matrix(VA)
  g <- expand.grid(row = seq_len(pp), col = seq_len(pp))
  vc[[i]] <- data.frame(id = mm$id, row = nm(names(fixef(f)))[g$row], col = nm(names(fixef(f)))[g$col],
                        vcov = V0[cbind(g$row, g$col)], vcov_adj = VA[cbind(g$row, g$col)])
  gam <- unlist(lapply(VarCorr(f), function(S) S[lower.tri(S, diag = TRUE)]))
  fit[[i]] <- data.frame(id = mm$id, reml_crit = REMLcrit(f), n = nobs(f), singular = isSingular(f),
                         theta = paste(format(getME(f, "theta"), digits = 15), collapse = " "),
                         gamma = paste(format(c(gam, sigma(f)^2), digits = 15), collapse = " "),
                         terms = paste(names(VarCorr(f)), collapse = " "))
  cat(sprintf("%-18s n=%4d  KR summary %.2fs\n", mm$id, nobs(f), tm))
}
write.csv(do.call(rbind, fixed), file.path(here, "lmm_kr_fixed.csv"), row.names = FALSE)
write.csv(do.call(rbind, con), file.path(here, "lmm_kr_contrasts.csv"), row.names = FALSE)
write.csv(do.call(rbind, vc), file.path(here, "lmm_kr_vcov.csv"), row.names = FALSE)
write.csv(do.call(rbind, multi), file.path(here, "lmm_kr_ddf_multi.csv"), row.names = FALSE)
write.csv(do.call(rbind, fit), file.path(here, "lmm_kr_fit.csv"), row.names = FALSE)
cat(sprintf("lme4 %s, lmerTest %s, pbkrtest %s, nlme %s, %s\n", packageVersion("lme4"), packageVersion("lmerTest"),
            packageVersion("pbkrtest"), packageVersion("nlme"), R.version.string),
    file = file.path(here, "lmm_kr_versions.txt"))
