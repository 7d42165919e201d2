# Reference values for the PQS analyses (alliance_stats.models.pqs), from R.
#
# Regenerate (from the repository root):
#   apt-get install r-base-core r-cran-psych
#   Rscript tests/reference/make_pqs_reference.R
#
# Input:  sample_data/pqs_sorts.csv (synthetic PQS sorts, two judges per session)
# Output: tests/reference/pqs_reference.csv (long: analysis, quantity, row, col, value)
#   icc       psych::ICC on each of items 1-10: sessions x judges (J1, J2), ICC2k and ICC2
#   qfactor   Q-technique on judge J1's first 12 sorts: principal components of the 12 x 12
#             correlation matrix between sorts, 3 components, stats::varimax (Kaiser
#             normalization, eps tightened to 1e-14); eigenvalues and rotated loadings
suppressPackageStartupMessages(library(psych))
q <- read.csv("sample_data/pqs_sorts.csv")
items <- paste0("PQS_", 1:100)
out <- list()
put <- function(analysis, quantity, value, row = seq_along(value), col = 1) {
  out[[length(out) + 1]] <<- data.frame(analysis = analysis, quantity = quantity, row = row, col = col, value = as.numeric(value))
}
j1 <- q[q$judge == "J1", ]
j2 <- q[q$judge == "J2", ]
stopifnot(all(j1$session_id == j2$session_id))
for (i in 1:10) {
  m <- cbind(j1[[items[i]]], j2[[items[i]]])
  ic <- psych::ICC(m, lmer = FALSE)$results
  put("icc", "ICC2k", ic$ICC[ic$type == "ICC2k"], row = i)
  put("icc", "ICC2", ic$ICC[ic$type == "ICC2"], row = i)
}
X <- t(as.matrix(j1[1:12, items]))      # items x sorts: sorts are the variables
R <- cor(X)
e <- eigen(R, symmetric = TRUE)
put("qfactor", "eigenvalues", e$values)
L <- e$vectors[, 1:3] %*% diag(sqrt(e$values[1:3]))
V <- stats::varimax(L, normalize = TRUE, eps = 1e-14)$loadings
for (j in 1:3) put("qfactor", "loadings", V[, j], row = 1:12, col = j)
res <- do.call(rbind, out)
write.csv(res, "tests/reference/pqs_reference.csv", row.names = FALSE)
cat(sprintf("psych %s: %d values\n", as.character(packageVersion("psych")), nrow(res)))
