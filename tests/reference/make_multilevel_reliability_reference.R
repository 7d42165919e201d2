# Reference values for als.multilevel_reliability from psych::multilevel.reliability (Shrout & Lane 2012).
# Run from the repository root:  Rscript tests/reference/make_multilevel_reliability_reference.R
# Needs (Debian): apt-get install r-base-core r-cran-psych r-cran-lme4
# Data: the synthetic sample study's WAI-SR items (sample_data/sessions_wide.csv), complete rows only,
# and its first 40 patients (a smaller, unbalanced set). lmer = TRUE, lme = FALSE: variance components
# from lme4 (crossed random intercepts of patient, session, item and their two-way interactions;
# and patient/session for RkRn and Rcn). psych calls lmer with its default control; the same models are
# refitted here with BOBYQA to rhoend 1e-10 and the coefficients recomputed with psych's formulas
# (columns tight_*): the tests compare with those, and psych's own numbers agree with them to the
# precision of lme4's default stopping rule.
suppressMessages({library(psych); library(lme4)})
w <- read.csv("sample_data/sessions_wide.csv", stringsAsFactors = FALSE)
items <- paste0("WAISR_", 1:12)
w <- w[complete.cases(w[, items]), c("client_id", "session_no", items)]
out <- list()
for (set in c("all", "first40")) {
  x <- if (set == "all") w else w[w$client_id %in% sort(unique(w$client_id))[1:40], ]
  r <- multilevel.reliability(x, grp = "client_id", Time = "session_no", items = items,
                              alpha = FALSE, icc = FALSE, aov = FALSE, lmer = TRUE, lme = FALSE)
  out[[set]] <- data.frame(set = set, n_obs = r$n.obs, n_time = r$n.time, n_items = r$n.items,
                           RkF = r$RkF, R1R = r$R1R, RkR = r$RkR, Rc = r$Rc, RkRn = r$RkRn, Rcn = r$Rcn,
                           v_id = r$components["ID", 1], v_time = r$components["Time", 1],
                           v_items = r$components["Items", 1], v_id_time = r$components["ID x time", 1],
                           v_id_items = r$components["ID x items", 1], v_time_items = r$components["time x items", 1],
                           v_resid = r$components["Residual", 1],
                           v_nested_id = r$components["id", 1], v_nested_id_time = r$components["id(time)", 1],
                           v_nested_resid = r$components["residual", 1])
  ctrl <- lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-10, maxfun = 1e5))
  long <- r$long
  vc <- VarCorr(lmer(values ~ 1 + (1 | id) + (1 | time) + (1 | items) + (1 | id:time) + (1 | id:items) +
                       (1 | items:time), data = long, control = ctrl))
  nt <- r$n.time; ni <- r$n.items
  vid <- vc$id[1, 1]; vtime <- vc$time[1, 1]; vpt <- vc[["id:time"]][[1]]; vpi <- vc[["id:items"]][[1]]
  err <- attr(vc, "sc")^2
  vn <- VarCorr(lmer(values ~ 1 + (1 | id/time), data = long, control = ctrl))
  nid <- vn$id[1, 1]; nidt <- vn[["time:id"]][[1]]; nres <- attr(vn, "sc")^2
  p <- vid + vpi / ni
  out[[set]] <- cbind(out[[set]], data.frame(
    tight_RkF = p / (p + err / (nt * ni)), tight_R1R = p / (p + vtime + vpt + err / ni),
    tight_RkR = p / (p + vtime / nt + vpt / nt + err / (nt * ni)), tight_Rc = vpt / (vpt + err / ni),
    tight_RkRn = nid / (nid + nidt / nt + nres / (nt * ni)), tight_Rcn = nidt / (nidt + nres / ni),
    tight_v_id = vid, tight_v_time = vtime, tight_v_items = vc$items[1, 1], tight_v_id_time = vpt,
    tight_v_id_items = vpi, tight_v_time_items = vc[["items:time"]][[1]], tight_v_resid = err,
    tight_v_nested_id = nid, tight_v_nested_id_time = nidt, tight_v_nested_resid = nres))
}
res <- do.call(rbind, out)
write.csv(format(res, digits = 15), "tests/reference/psych_multilevel_reliability.csv", row.names = FALSE)
cat(sprintf("psych %s, lme4 %s, %s\n", packageVersion("psych"), packageVersion("lme4"), R.version.string),
    file = "tests/reference/psych_multilevel_reliability_versions.txt")
