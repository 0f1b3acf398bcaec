# Kenward-Roger intervals from lme4/pbkrtest on the data sets of validation/kr_same_data.py.
#
# Usage: Rscript validation/r_kr_same_data.R DATA.csv OUT.csv
# For each replication `rep`: lmer(y ~ age + female + treated + school + (1 | student),
# REML), and for the margin at treated = 0 (L = intercept, the means of age and female,
# treated 0, the shares of schools B-D) lmerTest's contest1D with ddf = "Kenward-Roger"
# (pbkrtest's adjusted covariance and df). Tested with R 4.2.2, lme4 1.1-31, lmerTest 3.1-3,
# pbkrtest 0.5.2.

suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(pbkrtest)
})

args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[[1]])
d$school <- factor(d$school)
d$student <- factor(d$student)
out <- list()
for (r in sort(unique(d$rep))) {
  x <- d[d$rep == r, ]
  f <- suppressMessages(lmer(y ~ age + female + treated + school + (1 | student), data = x,
                             REML = TRUE))
  L <- c(1, mean(x$age), mean(x$female), 0, mean(x$school == "B"), mean(x$school == "C"),
         mean(x$school == "D"))
  ct <- contest1D(f, L, ddf = "Kenward-Roger")
  out[[length(out) + 1]] <- data.frame(rep = r, est = ct$Estimate, se = ct[["Std. Error"]],
                                       df = ct$df, llf = as.numeric(logLik(f)))
}
write.csv(do.call(rbind, out), args[[2]], row.names = FALSE)
