# Reference values for crossed random effects in als.lmm, from lme4 + lmerTest.
#
# Regenerate from the repository root:
#   python tests/reference/make_lmm_crossed_data.py   # simulated raters and therapist changers
#   Rscript tests/reference/make_lmm_crossed_reference.R
# Needs (Debian): apt-get install r-base-core r-cran-lme4 r-cran-lmertest
# Writes lme4's own Penicillin and InstEval data (InstEval: the columns the model uses; service
# as 0/1), and fits every model in lmm_crossed_models.csv from those CSV files, as the tests do.
# A tight optimizer tolerance puts the reference at the optimum (optima are compared, not paths).
suppressMessages({library(lme4); library(lmerTest)})
here <- "tests/reference"
write.csv(lme4::Penicillin, file.path(here, "lmm_crossed_penicillin.csv"), row.names = FALSE)
ie <- lme4::InstEval
ie <- data.frame(s = as.integer(as.character(ie$s)), d = as.integer(as.character(ie$d)),
                 dept = as.integer(as.character(ie$dept)), service = as.integer(as.character(ie$service)),
                 y = ie$y)
con <- gzfile(file.path(here, "lmm_crossed_insteval.csv.gz"), "w")
write.csv(ie, con, row.names = FALSE)
close(con)
data <- list(
  penicillin = read.csv(file.path(here, "lmm_crossed_penicillin.csv")),
  insteval = read.csv(file.path(here, "lmm_crossed_insteval.csv.gz")),
  raters = read.csv(file.path(here, "lmm_crossed_raters.csv.gz")),
  changers = read.csv(file.path(here, "lmm_crossed_changers.csv.gz"))
)
for (v in c("plate", "sample")) data$penicillin[[v]] <- factor(data$penicillin[[v]])
for (v in c("s", "d", "dept")) data$insteval[[v]] <- factor(data$insteval[[v]])
for (v in c("patient", "rater")) data$raters[[v]] <- factor(data$raters[[v]])
for (v in c("patient", "therapist")) data$changers[[v]] <- factor(data$changers[[v]])
models <- read.csv(file.path(here, "lmm_crossed_models.csv"), stringsAsFactors = FALSE)
ctrl <- lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-10, maxfun = 1e5))
fixed <- list(); random <- list(); fit <- list(); blups <- list()
for (i in seq_len(nrow(models))) {
  m <- models[i, ]
  t0 <- proc.time()[["elapsed"]]
  f <- lmerTest::lmer(as.formula(m$formula), data = data[[m$data]], REML = as.logical(m$reml), control = ctrl)
  ct <- summary(f)$coefficients
  fixed[[i]] <- data.frame(id = m$id, term = sub("^\\(Intercept\\)$", "Intercept", rownames(ct)),
                           estimate = ct[, "Estimate"], se = ct[, "Std. Error"], df = ct[, "df"],
                           t = ct[, "t value"], p = ct[, "Pr(>|t|)"])
  vc <- as.data.frame(VarCorr(f))
  vc$var1 <- sub("^\\(Intercept\\)$", "Intercept", vc$var1)
  vc$var2 <- sub("^\\(Intercept\\)$", "Intercept", vc$var2)
  random[[i]] <- data.frame(id = m$id, grp = vc$grp, var1 = vc$var1, var2 = vc$var2, vcov = vc$vcov, sdcor = vc$sdcor)
  re <- as.data.frame(ranef(f, condVar = TRUE))
  re$term <- sub("^\\(Intercept\\)$", "Intercept", re$term)
  blups[[i]] <- data.frame(id = m$id, grp = re$grpvar, level = re$grp, term = re$term,
                           estimate = re$condval, cond_sd = re$condsd)
  fit[[i]] <- data.frame(id = m$id, loglik = as.numeric(logLik(f)), n = nobs(f), singular = isSingular(f),
                         sigma = sigma(f), feval = f@optinfo$feval,
                         theta = paste(format(getME(f, "theta"), digits = 15), collapse = " "))
  cat(sprintf("%s: %.1f s\n", m$id, proc.time()[["elapsed"]] - t0))
}
opt <- function(df) { df[] <- lapply(df, function(x) if (is.numeric(x)) signif(x, 15) else x); df }
write.csv(opt(do.call(rbind, fixed)), file.path(here, "lmm_crossed_fixed.csv"), row.names = FALSE)
write.csv(opt(do.call(rbind, random)), file.path(here, "lmm_crossed_random.csv"), row.names = FALSE)
con <- gzfile(file.path(here, "lmm_crossed_ranef.csv.gz"), "w")
write.csv(opt(do.call(rbind, blups)), con, row.names = FALSE)
close(con)
write.csv(opt(do.call(rbind, fit)), file.path(here, "lmm_crossed_fit.csv"), row.names = FALSE)
cat(sprintf("lme4 %s, lmerTest %s, %s\n", packageVersion("lme4"), packageVersion("lmerTest"), R.version.string),
    file = file.path(here, "lmm_crossed_versions.txt"))
