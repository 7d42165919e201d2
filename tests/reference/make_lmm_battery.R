# The mixed-model reference battery: lme4 / lmerTest / pbkrtest optima that guard als.lmm
# (tests/test_lmm_battery.py).
#
# Regenerate from the repository root:
#   python tests/reference/make_lmm_battery_data.py     # the simulated alliance designs
#   Rscript tests/reference/make_lmm_battery.R          # all fits (about 20 minutes; InstEval and the
#                                                       # 100,000-row model take 5 each)
#   Rscript tests/reference/make_lmm_battery.R id ...   # refit only these ids (rows replaced in place)
# Needs (Debian): apt-get install r-base-core r-cran-lme4 r-cran-lmertest r-cran-pbkrtest r-cran-nlme
#
# Inputs (hand-written): lmm_battery_models.csv (id, data, reml, formula; R formula semantics) and
# lmm_battery_data.csv (data, file, factors = the columns read as factors, levels sorted as in C).
# R's own data sets (lme4, nlme) are exported here first, column names as R has them; Orthodont
# gains age_c = age - 11; cake keeps temperature (ordered factor, as labels) and temp.
#
# Each model is fitted by lme4::lmer with (a) the default control, (b) BOBYQA with rhoend 1e-10,
# (c) nloptwrap BOBYQA with tight tolerances and (d) BOBYQA restarted from the best of (a)-(c);
# the fit with the highest log-likelihood is the reference ("best"). Outputs:
#   lmm_battery_fit.csv     id, nobs, ngroups, loglik (best), best_optimizer, loglik_* of each
#                           optimizer, feval_default / time_default_s (lme4's default, for the
#                           benchmark record), default_messages, singular (isSingular), theta, sigma
#   lmm_battery_fixed.csv   lmerTest Satterthwaite table of the best fit (estimate, se, df, t, p)
#   lmm_battery_random.csv  as.data.frame(VarCorr(best)), grp = the grouping factor's name (VarCorr's
#                           "g.1" for the second block of (1 + x || g) is written "g")
#   lmm_battery_kr.csv      lmerTest summary(ddf = "Kenward-Roger") (pbkrtest) for REML fits with
#                           nobs <= 3000: estimate, se_kr, df_kr, t, p
#   lmm_battery_versions.txt
# Term names: "(Intercept)" is written "Intercept"; everything else as R names it.
suppressMessages({library(lme4); library(lmerTest); library(pbkrtest)})
here <- "tests/reference"
args <- commandArgs(trailingOnly = TRUE)

# -- R's data sets -----------------------------------------------------------------------------
plain <- function(d) { d <- as.data.frame(d); attributes(d)[c("formula", "labels", "units", "outer", "inner", "FUN", "order.groups")] <- NULL; d }
orthodont <- plain(nlme::Orthodont); orthodont$age_c <- orthodont$age - 11
exports <- list(
  sleepstudy = lme4::sleepstudy, dyestuff = lme4::Dyestuff, dyestuff2 = lme4::Dyestuff2,
  pastes = lme4::Pastes, penicillin = lme4::Penicillin, orthodont = orthodont,
  oxboys = plain(nlme::Oxboys), ergostool = plain(nlme::ergoStool), machines = plain(nlme::Machines),
  rail = plain(nlme::Rail), insteval = lme4::InstEval, cake = lme4::cake
)
datalist <- read.csv(file.path(here, "lmm_battery_data.csv"), stringsAsFactors = FALSE)
for (nm in names(exports)) {
  fn <- file.path(here, datalist$file[datalist$data == nm])
  con <- if (grepl("\\.gz$", fn)) gzfile(fn, "w") else file(fn, "w")
  write.csv(exports[[nm]], con, row.names = FALSE)
  close(con)
}
load_data <- function(nm) {
  row <- datalist[datalist$data == nm, ]
  d <- read.csv(file.path(here, row$file), stringsAsFactors = FALSE)
  for (col in strsplit(row$factors, " ")[[1]]) {
    x <- as.character(d[[col]])
    d[[col]] <- factor(x, levels = sort(unique(x), method = "radix"))
  }
  d
}

# -- fits -------------------------------------------------------------------------------------
models <- read.csv(file.path(here, "lmm_battery_models.csv"), stringsAsFactors = FALSE)
todo <- if (length(args)) models[models$id %in% args, ] else models
if (length(args) && !all(args %in% models$id)) stop("unknown id(s): ", paste(setdiff(args, models$id), collapse = " "))
controls <- list(
  bobyqa = lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-10, maxfun = 1e5)),
  nloptwrap = lmerControl(optimizer = "nloptwrap",
                          optCtrl = list(xtol_rel = 1e-12, ftol_rel = 1e-15, xtol_abs = 1e-12, ftol_abs = 1e-15, maxeval = 1e5))
)
intercept <- function(x) sub("^\\(Intercept\\)$", "Intercept", x)
# VarCorr names the blocks of (1 + x || g) "g", "g.1" and an interaction a:b in them "a.b": back to the factor's name
clean_grp <- function(g, factors) sapply(g, function(x) {
  y <- sub("\\.[0-9]+$", "", x)
  if (y %in% c(factors, "Residual")) y else if (gsub(".", ":", y, fixed = TRUE) %in% factors) gsub(".", ":", y, fixed = TRUE) else x
}, USE.NAMES = FALSE)
fmt <- function(x) paste(sapply(x, format, digits = 15), collapse = " ")
quiet <- function(expr) suppressMessages(suppressWarnings(expr))
cache <- list()
out <- list(fit = list(), fixed = list(), random = list(), kr = list())
for (i in seq_len(nrow(todo))) {
  m <- todo[i, ]
  if (is.null(cache[[m$data]])) cache[[m$data]] <- load_data(m$data)
  d <- cache[[m$data]]
  form <- as.formula(m$formula)
  reml <- as.logical(m$reml)
  t0 <- proc.time()[["elapsed"]]
  fits <- list(default = quiet(lme4::lmer(form, data = d, REML = reml)))
  t_def <- proc.time()[["elapsed"]] - t0
  for (nm in names(controls)) fits[[nm]] <- quiet(lme4::lmer(form, data = d, REML = reml, control = controls[[nm]]))
  ll <- sapply(fits, function(f) as.numeric(logLik(f)))
  fits$polish <- quiet(lme4::lmer(form, data = d, REML = reml, control = controls$bobyqa,
                                             start = list(theta = getME(fits[[which.max(ll)]], "theta"))))
  ll <- sapply(fits, function(f) as.numeric(logLik(f)))
  best <- names(which.max(ll))
  f <- fits[[best]]
  ft <- lmerTest::as_lmerModLmerTest(f)
  ct <- quiet(summary(ft))$coefficients
  out$fixed[[i]] <- data.frame(id = m$id, term = intercept(rownames(ct)), estimate = ct[, "Estimate"], se = ct[, "Std. Error"],
                               df = ct[, "df"], t = ct[, "t value"], p = ct[, "Pr(>|t|)"])
  vc <- as.data.frame(VarCorr(f))
  vc$grp <- clean_grp(vc$grp, names(getME(f, "flist")))
  out$random[[i]] <- data.frame(id = m$id, grp = vc$grp, var1 = intercept(vc$var1), var2 = intercept(vc$var2),
                                vcov = vc$vcov, sdcor = vc$sdcor)
  ng <- ngrps(f)
  msgs <- fits$default@optinfo$conv$lme4$messages
  out$fit[[i]] <- data.frame(
    id = m$id, nobs = nobs(f), ngroups = paste(names(ng), ng, sep = "=", collapse = ";"),
    loglik = ll[[best]], best_optimizer = best, loglik_default = ll[["default"]], loglik_bobyqa = ll[["bobyqa"]],
    loglik_nloptwrap = ll[["nloptwrap"]], loglik_polish = ll[["polish"]],
    feval_default = fits$default@optinfo$feval, feval_bobyqa = fits$bobyqa@optinfo$feval, time_default_s = round(t_def, 3),
    default_messages = if (is.null(msgs)) "" else paste(msgs, collapse = " | "),
    singular = isSingular(f), theta = fmt(getME(f, "theta")), sigma = sigma(f)
  )
  if (reml && nobs(f) <= 3000) {
    kr <- tryCatch(quiet(summary(ft, ddf = "Kenward-Roger"))$coefficients, error = function(e) { message(m$id, ": KR failed: ", conditionMessage(e)); NULL })
    if (!is.null(kr))
      out$kr[[i]] <- data.frame(id = m$id, term = intercept(rownames(kr)), estimate = kr[, "Estimate"], se_kr = kr[, "Std. Error"],
                                df_kr = kr[, "df"], t = kr[, "t value"], p = kr[, "Pr(>|t|)"])
  }
  cat(sprintf("%-22s logLik %.6f (%s; default %+.2e)  singular %s  %.1f s\n", m$id, ll[[best]], best,
              ll[["default"]] - ll[[best]], isSingular(f), proc.time()[["elapsed"]] - t0))
}

# -- write (with ids on the command line: replace those rows, keep the rest) --------------------------------
for (part in names(out)) {
  fn <- file.path(here, sprintf("lmm_battery_%s.csv", part))
  new <- do.call(rbind, out[[part]])
  if (length(args) && file.exists(fn)) {
    old <- read.csv(fn, stringsAsFactors = FALSE)
    old <- old[!old$id %in% todo$id, ]
    new <- if (is.null(new)) old else rbind(old, new)
  }
  new <- new[order(match(new$id, models$id)), ]
  write.csv(new, fn, row.names = FALSE)
}
cat(sprintf("lme4 %s, lmerTest %s, pbkrtest %s, nloptr %s, Matrix %s, %s\n", packageVersion("lme4"), packageVersion("lmerTest"),
            packageVersion("pbkrtest"), packageVersion("nloptr"), packageVersion("Matrix"), R.version.string),
    file = file.path(here, "lmm_battery_versions.txt"))
