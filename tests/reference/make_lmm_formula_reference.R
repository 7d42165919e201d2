# Reference model matrices and fits for alliance-stats' formula handling (als.lmm) from lme4.
#
# Regenerate from the repository root:
#   python tests/reference/make_lmm_formula_data.py     # the small alliance table
#   Rscript tests/reference/make_lmm_formula_reference.R
# Needs (Debian): apt-get install r-base-core r-cran-lme4
#
# For each formula of lmm_formula_cases.csv, lme4's lFormula (the model frame and matrices lmer
# fits) gives: the rows used, the response, the fixed-effects matrix X, the offset, and for each
# random term the values of its columns on each row (from Zt: the rows of the row's group).
# For each model of lmm_formula_fits.csv, lmer's fit (logLik, fixed effects) and predictions on
# new rows without random effects (predict(fit, newdata, re.form = NA)).
suppressMessages(library(lme4))
here <- "tests/reference"
data <- list(
  sleepstudy = lme4::sleepstudy,
  alliance = read.csv(file.path(here, "lmm_formula_data.csv"), stringsAsFactors = FALSE)
)
# text columns as factors (levels sorted, as R's factor(); C() needs a factor)
for (v in c("patient", "therapist", "condition", "site")) data$alliance[[v]] <- factor(data$alliance[[v]])
newdata <- list(
  sleepstudy = data.frame(Days = c(0, 2.5, 9, 12, -1), Subject = "308"),
  alliance = data.frame(wai = c(3.5, 4.2, 5.1), session = c(1, 4.5, 10), condition = c("wait", "cbt", "ipt"),
                        dose = c(1, 2.5, 0.7), patient = "p01")
)
num <- function(x) sprintf("%.17g", x)
long <- function(id, part, rows, m) {
  m <- as.matrix(m)
  data.frame(id = id, part = part, row = rep(rows, ncol(m)), column = rep(colnames(m), each = nrow(m)),
             value = num(as.vector(m)))
}
ctrl <- lmerControl(check.nobs.vs.nRE = "ignore", check.nobs.vs.nlev = "ignore", check.nlev.gtreq.5 = "ignore")
cases <- read.csv(file.path(here, "lmm_formula_cases.csv"), stringsAsFactors = FALSE)
out <- list()
for (i in seq_len(nrow(cases))) {
  cs <- cases[i, ]
  cat(cs$id, "\n")
  lf <- lFormula(as.formula(cs$formula), data = data[[cs$data]], control = ctrl)
  rows <- as.integer(rownames(lf$fr)) - 1L  # 0-based, as the Python table's index
  out[[length(out) + 1]] <- long(cs$id, "y", rows, cbind(y = model.response(lf$fr)))
  out[[length(out) + 1]] <- long(cs$id, "X", rows, lf$X)
  off <- model.offset(lf$fr)
  if (!is.null(off)) out[[length(out) + 1]] <- long(cs$id, "offset", rows, cbind(offset = off))
  re <- lf$reTrms
  for (k in seq_along(re$Ztlist)) {
    grp <- names(re$cnms)[k]
    q <- length(re$cnms[[k]])
    Zt <- as.matrix(re$Ztlist[[k]])
    g <- as.integer(re$flist[[attr(re$flist, "assign")[k]]])
    Z <- t(sapply(seq_along(g), function(j) Zt[(g[j] - 1) * q + seq_len(q), j]))
    if (q == 1) Z <- t(Z)
    colnames(Z) <- re$cnms[[k]]
    out[[length(out) + 1]] <- long(cs$id, paste0("Z:", grp), rows, Z)
  }
}
mat <- do.call(rbind, out)
gz <- gzfile(file.path(here, "lmm_formula_matrices.csv.gz"), "w")
write.csv(mat, gz, row.names = FALSE)
close(gz)

fits <- read.csv(file.path(here, "lmm_formula_fits.csv"), stringsAsFactors = FALSE)
ctl <- lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-10, maxfun = 1e5))
fit <- list(); fixed <- list(); pred <- list()
for (i in seq_len(nrow(fits))) {
  m <- fits[i, ]
  f <- lmer(as.formula(m$formula), data = data[[m$data]], REML = as.logical(m$reml), control = ctl)
  ct <- summary(f)$coefficients
  fixed[[i]] <- data.frame(id = m$id, term = rownames(ct), estimate = num(ct[, "Estimate"]), se = num(ct[, "Std. Error"]))
  fit[[i]] <- data.frame(id = m$id, loglik = num(as.numeric(logLik(f))), n = nobs(f), singular = isSingular(f))
  nd <- newdata[[m$data]]
  pred[[i]] <- data.frame(id = m$id, row = seq_len(nrow(nd)) - 1L, predicted = num(predict(f, newdata = nd, re.form = NA)))
}
write.csv(do.call(rbind, fit), file.path(here, "lmm_formula_fit.csv"), row.names = FALSE)
write.csv(do.call(rbind, fixed), file.path(here, "lmm_formula_fixed.csv"), row.names = FALSE)
write.csv(do.call(rbind, pred), file.path(here, "lmm_formula_predict.csv"), row.names = FALSE)
nd <- merge(cbind(data = "sleepstudy", row = seq_len(nrow(newdata$sleepstudy)) - 1L, newdata$sleepstudy),
            cbind(data = "alliance", row = seq_len(nrow(newdata$alliance)) - 1L, newdata$alliance), all = TRUE, sort = FALSE)
write.csv(nd, file.path(here, "lmm_formula_newdata.csv"), row.names = FALSE, na = "")
cat(sprintf("lme4 %s, %s\n", packageVersion("lme4"), R.version.string), file = file.path(here, "lmm_formula_versions.txt"))
