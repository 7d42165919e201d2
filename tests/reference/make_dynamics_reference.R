# Reference values for alliance-stats' dynamic panel model (als.dynamic_panel) and RI-CLPM
# (als.ri_clpm) from lavaan.
#
# Regenerate from the repository root:
#   python tests/reference/make_dynamics_data.py     # simulated data (dynamics_feedback/design2.csv)
#   Rscript tests/reference/make_dynamics_reference.R
# Needs (Debian): apt-get install r-base-core r-cran-lavaan r-cran-plm
#
# The models are written here in lavaan syntax by hand, independently of the Python code:
# - the ML-SEM dynamic panel model of Allison, Williams & Moral-Benito (2017), as R's dpm() and
#   Stata's xtdpdml specify it (alpha loading 1 on y_t, correlated with every exogenous variable
#   except time-invariant covariates; x predetermined: the error of y at session t correlates with
#   x at later sessions; with reverse = TRUE both equations jointly, errors correlated within
#   session);
# - the RI-CLPM of Hamaker, Kuiper & Grasman (2015).
# Every parameter is written out and lavaan() is called with its automatic options off, so the
# parameter count is exactly the model's. estimator = "ML", missing = "fiml", fixed.x = FALSE,
# observed information (and, for three models, Huber-White sandwich SEs); nlminb, then BFGS with a tight tolerance from its solution, so that the
# reference sits at the optimum.
# Also written: the wages data of Allison et al. (2017) (Cornwell & Rupert 1988, R's plm::Wages;
# 595 people, 7 years), whose published dpm() results are compared in the tests as well.
suppressMessages(library(lavaan))
here <- "tests/reference"

# --- data -------------------------------------------------------------------------------------
data("Wages", package = "plm")
wages <- data.frame(id = rep(1:595, each = 7), t = rep(1:7, 595), wks = Wages$wks, lwage = Wages$lwage,
                    union = as.integer(Wages$union == "yes"), ed = Wages$ed)
write.csv(wages, file.path(here, "dynamics_wages.csv"), row.names = FALSE)
long <- list(
  feedback = read.csv(file.path(here, "dynamics_feedback.csv")),
  design2 = read.csv(file.path(here, "dynamics_design2.csv")),
  wages = wages
)
ids <- list(feedback = c("patient", "session"), design2 = c("patient", "session"), wages = c("id", "t"))

to_wide <- function(d, id, t, vars, invariant = character()) {
  ps <- sort(unique(d[[id]]))
  T <- max(d[[t]])
  out <- data.frame(row.names = seq_along(ps))
  row <- match(d[[id]], ps)
  for (v in vars) {
    for (s in 1:T) out[[paste0(v, "_", s)]] <- NA_real_
    for (s in 1:T) {
      k <- d[[t]] == s
      out[[paste0(v, "_", s)]][row[k]] <- d[[v]][k]
    }
  }
  for (v in invariant) out[[v]] <- tapply(d[[v]], factor(d[[id]], levels = ps), function(z) z[!is.na(z)][1])
  out
}

# --- model syntax -----------------------------------------------------------------------------
v <- function(n, t) paste0(n, "_", t)
pairs_cov <- function(vars) {
  out <- character()
  for (i in seq_along(vars)) for (j in seq_len(i)) out <- c(out, paste(vars[i], "~~", vars[j]))
  out
}

dpm_syntax <- function(y, x, T, L = 1, tv = character(), ti = character(), reverse = FALSE, error_inv = FALSE) {
  last_x <- if (reverse) T else T - L
  lat_y <- if (reverse) paste0("alpha_", y) else "alpha"
  lat_x <- paste0("alpha_", x)
  lines <- character()
  for (t in (L + 1):T) {
    rhs <- c(paste0("xy*", v(x, t - L)), paste0("yy*", v(y, t - L)))
    for (c in tv) rhs <- c(rhs, paste0(c, "Y*", v(c, t - L)))
    for (c in ti) rhs <- c(rhs, paste0(c, "Y*", c))
    lines <- c(lines, paste(v(y, t), "~", paste(rhs, collapse = " + ")), paste(v(y, t), "~ 1"),
               paste0(v(y, t), " ~~ ", if (error_inv) "ey*" else "", v(y, t)))
    if (reverse) {
      rhs <- c(paste0("yx*", v(y, t - L)), paste0("xx*", v(x, t - L)))
      for (c in tv) rhs <- c(rhs, paste0(c, "X*", v(c, t - L)))
      for (c in ti) rhs <- c(rhs, paste0(c, "X*", c))
      lines <- c(lines, paste(v(x, t), "~", paste(rhs, collapse = " + ")), paste(v(x, t), "~ 1"),
                 paste0(v(x, t), " ~~ ", if (error_inv) "ex*" else "", v(x, t)), paste(v(y, t), "~~", v(x, t)))
    }
  }
  lines <- c(lines, paste(lat_y, "=~", paste0("1*", v(y, (L + 1):T), collapse = " + ")))
  if (reverse) lines <- c(lines, paste(lat_x, "=~", paste0("1*", v(x, (L + 1):T), collapse = " + ")))
  exog <- c(v(y, 1:L), if (reverse) v(x, 1:L) else v(x, 1:last_x))
  for (c in tv) exog <- c(exog, v(c, 1:(T - L)))
  exog_all <- c(exog, ti)
  lines <- c(lines, paste(exog_all, "~ 1"), pairs_cov(exog_all))
  lats <- if (reverse) c(lat_y, lat_x) else lat_y
  lines <- c(lines, pairs_cov(lats))
  for (a in lats) lines <- c(lines, paste(a, "~~", exog))  # not with time-invariant covariates
  if (!reverse) {
    for (t in (L + 1):T) {
      if (t + 1 <= last_x) for (s in (t + 1):last_x) lines <- c(lines, paste(v(y, t), "~~", v(x, s)))
    }
  }
  paste(lines, collapse = "\n")
}

riclpm_syntax <- function(x, y, T, constrain = TRUE) {
  lines <- c(paste0("RI_", x, " =~ ", paste0("1*", v(x, 1:T), collapse = " + ")),
             paste0("RI_", y, " =~ ", paste0("1*", v(y, 1:T), collapse = " + ")))
  for (t in 1:T) {
    lines <- c(lines, paste0("w_", x, "_", t, " =~ 1*", v(x, t)), paste0("w_", y, "_", t, " =~ 1*", v(y, t)),
               paste(v(x, t), "~ 1"), paste(v(y, t), "~ 1"), paste0(v(x, t), " ~~ 0*", v(x, t)), paste0(v(y, t), " ~~ 0*", v(y, t)),
               paste0("w_", x, "_", t, " ~~ w_", x, "_", t), paste0("w_", y, "_", t, " ~~ w_", y, "_", t),
               paste0("w_", x, "_", t, " ~~ w_", y, "_", t))
  }
  for (t in 2:T) {
    s <- if (constrain) "" else t
    lines <- c(lines,
               paste0("w_", x, "_", t, " ~ xx", s, "*w_", x, "_", t - 1, " + yx", s, "*w_", y, "_", t - 1),
               paste0("w_", y, "_", t, " ~ xy", s, "*w_", x, "_", t - 1, " + yy", s, "*w_", y, "_", t - 1))
  }
  lines <- c(lines, paste0("RI_", x, " ~~ RI_", x), paste0("RI_", y, " ~~ RI_", y), paste0("RI_", x, " ~~ RI_", y))
  paste(lines, collapse = "\n")
}

fit_model <- function(model, data) {
  args <- list(model = model, data = data, estimator = "ML", missing = "fiml", fixed.x = FALSE, meanstructure = TRUE,
               information = "observed", int.ov.free = FALSE, int.lv.free = FALSE, auto.fix.first = FALSE,
               auto.fix.single = FALSE, auto.var = FALSE, auto.cov.lv.x = FALSE, auto.cov.y = FALSE, auto.th = FALSE,
               auto.delta = FALSE)
  # lavaan's default optimizer (nlminb), then BFGS with a tight tolerance from its solution; the
  # fit with the higher log-likelihood is kept
  f1 <- do.call(lavaan, args)
  f2 <- do.call(lavaan, c(args, list(start = f1, optim.method = "BFGS", control = list(reltol = 1e-15, maxit = 100000))))
  f <- if (lavInspect(f2, "converged") && fitMeasures(f2, "logl") >= fitMeasures(f1, "logl")) f2 else f1
  stopifnot(lavInspect(f, "converged"))
  attr(f, "args") <- args
  f
}
robust_se <- function(f) {  # Huber-White sandwich SEs at the same estimates (se = "robust.huber.white")
  fr <- do.call(lavaan, c(attr(f, "args"), list(start = f, se = "robust.huber.white")))
  parameterEstimates(fr)$se
}

# --- models -----------------------------------------------------------------------------------
W <- list(
  feedback = to_wide(long$feedback, "patient", "session", c("alliance", "phq"), invariant = "age"),
  design2 = to_wide(long$design2, "patient", "session", c("alliance", "phq", "stress")),
  wages = to_wide(wages, "id", "t", c("wks", "lwage", "union"), invariant = "ed")
)
models <- list(
  fb_dpm = list("feedback", dpm_syntax("phq", "alliance", 6)),
  fb_dpm_reverse = list("feedback", dpm_syntax("phq", "alliance", 6, reverse = TRUE)),
  fb_dpm_age = list("feedback", dpm_syntax("phq", "alliance", 6, ti = "age")),
  fb_riclpm = list("feedback", riclpm_syntax("alliance", "phq", 6)),
  d2_dpm_lag2 = list("design2", dpm_syntax("phq", "alliance", 8, L = 2, tv = "stress", error_inv = TRUE)),
  d2_riclpm_free = list("design2", riclpm_syntax("alliance", "phq", 8, constrain = FALSE)),
  wages_basic = list("wages", dpm_syntax("lwage", "union", 7)),
  wages_socius = list("wages", dpm_syntax("wks", "union", 7, tv = "lwage", ti = "ed", error_inv = TRUE))
)
params <- list(); fits <- list(); stds <- list(); times <- list()
for (id in names(models)) {
  m <- models[[id]]
  t0 <- proc.time()[["elapsed"]]
  f <- fit_model(m[[2]], W[[m[[1]]]])
  times[[id]] <- proc.time()[["elapsed"]] - t0
  pe <- parameterEstimates(f)
  se_r <- if (id %in% c("fb_dpm", "fb_riclpm", "d2_dpm_lag2")) robust_se(f) else NA_real_
  params[[id]] <- data.frame(model = id, lhs = pe$lhs, op = pe$op, rhs = pe$rhs, label = pe$label, est = pe$est, se = pe$se,
                             se_robust = se_r)
  # the baseline (independence) model for CFI/TLI, fitted explicitly: every observed variable its own
  # mean and variance, by FIML (lavaan's own baseline fit can fail after a fit given start values)
  ov <- lavNames(f, "ov")
  base <- lavaan(paste(c(paste(ov, "~ 1"), paste(ov, "~~", ov)), collapse = "\n"), data = W[[m[[1]]]], estimator = "ML",
                 missing = "fiml", fixed.x = FALSE, meanstructure = TRUE)
  fm <- fitMeasures(f, c("chisq", "df", "pvalue", "cfi", "tli", "rmsea", "srmr", "logl", "npar", "ntotal", "baseline.chisq", "baseline.df"),
                    baseline.model = base)
  fits[[id]] <- data.frame(model = id, t(as.numeric(fm)), max_abs_gradient = max(abs(lavInspect(f, "gradient"))), seconds = times[[id]])
  names(fits[[id]]) <- c("model", names(fm), "max_abs_gradient", "seconds")
  if (grepl("riclpm", id)) {
    ss <- standardizedSolution(f)
    k <- ss$op == "~~" & grepl("^RI_", ss$lhs) & grepl("^RI_", ss$rhs) & ss$lhs != ss$rhs
    stds[[id]] <- data.frame(model = id, lhs = ss$lhs[k], rhs = ss$rhs[k], est_std = ss$est.std[k], se = ss$se[k])
  }
  cat(id, "chisq", fm[["chisq"]], "df", fm[["df"]], "logl", fm[["logl"]], "seconds", times[[id]], "\n")
}
write.csv(do.call(rbind, params), file.path(here, "dynamics_reference.csv"), row.names = FALSE)
write.csv(do.call(rbind, fits), file.path(here, "dynamics_reference_fit.csv"), row.names = FALSE)
write.csv(do.call(rbind, stds), file.path(here, "dynamics_reference_std.csv"), row.names = FALSE)
writeLines(sprintf("lavaan %s, plm %s, %s", packageVersion("lavaan"), packageVersion("plm"), R.version.string),
           file.path(here, "dynamics_reference_versions.txt"))
