# Reference values for alliance_stats.reliability(), from R's psych package.
#
# Regenerate (from the repository root):
#   apt-get install r-base-core r-cran-psych r-cran-gparotation
#   Rscript tests/reference/make_psych_reference.R
#
# Inputs:  tests/reference/reliability_wai_sr_items.csv  (synthetic WAI-SR items, made by
#          alliance_stats.simulate_study(seed=2024, n_therapists=10, patients_per_therapist=6,
#          missing_item_rate=0), first 400 sessions)
#          psych::bfi (public dataset shipped with psych): Agreeableness A1-A5, A1 reversed,
#          complete cases; written to tests/reference/reliability_bfi_agreeableness.csv
# Output:  tests/reference/psych_reliability.csv
suppressPackageStartupMessages(library(psych))
here <- "tests/reference"

one <- function(dataset, scale, x) {
  x <- as.matrix(x)
  a <- psych::alpha(x, check.keys = FALSE, warnings = FALSE)
  ci <- psych::alpha.ci(a$total$raw_alpha, n.obs = nrow(x), n.var = ncol(x), p.val = .05, digits = 10)
  om <- suppressWarnings(psych::omega(x, nfactors = 1, fm = "minres", plot = FALSE))
  r <- cor(x)
  data.frame(dataset = dataset, scale = scale, n = nrow(x), n_items = ncol(x),
             alpha = a$total$raw_alpha, alpha_ci_low = ci$lower.ci, alpha_ci_high = ci$upper.ci,
             omega_total = om$omega.tot, mean_r = mean(r[lower.tri(r)]))
}

wai <- read.csv(file.path(here, "reliability_wai_sr_items.csv"))
key <- list(task = c(1, 2, 10, 12), bond = c(3, 5, 7, 9), goal = c(4, 6, 8, 11), total = 1:12)
out <- do.call(rbind, lapply(names(key), function(s) one("wai_sr_sim", s, wai[, key[[s]]])))

data(bfi, package = "psych")
agree <- na.omit(bfi[, c("A1", "A2", "A3", "A4", "A5")])
write.csv(agree, file.path(here, "reliability_bfi_agreeableness.csv"), row.names = FALSE)
agree_r <- agree
agree_r$A1 <- 7 - agree_r$A1   # reverse-keyed item on the 1-6 scale
out <- rbind(out, one("bfi_agreeableness", "total", agree_r))

write.csv(out, file.path(here, "psych_reliability.csv"), row.names = FALSE)
cat(sprintf("psych %s\n", as.character(packageVersion("psych"))))
print(out, digits = 10)
