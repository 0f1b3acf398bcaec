# Reference small-sample degrees of freedom for linear mixed models, from R.
#
# Satterthwaite df and SEs from lmerTest (contest1D, ddf = "Satterthwaite"), Kenward-Roger df
# and adjusted SEs from pbkrtest (through lmerTest's contest1D, ddf = "Kenward-Roger", which
# calls pbkrtest::vcovAdj and pbkrtest's Lb_ddf) with emmeans as a cross-check, for linear
# combinations L·beta (fixed effects, margins at covariate values, contrasts) of:
#
#   ss_rs_reml / ss_rs_ml   Reaction ~ Days + (Days | Subject), sleepstudy, REML / ML
#   ss_diag_reml            Reaction ~ Days + (1 | Subject) + (0 + Days | Subject), REML
#                           (statsmodels: re_formula = "1", vc_formula = {"Days": "0 + Days"})
#   ub_ri_reml / ub_ri_ml   Reaction ~ Days + late + (1 | Subject) on an unbalanced subset
#   ub_rs_reml              Reaction ~ Days + late + (Days | Subject), same subset, REML
#
# The unbalanced subset keeps, for the s-th subject in sorted order (s = 0..17), the rows with
# Days < 3 + (s %% 8) (3 to 10 rows per subject, 111 rows); late = as.numeric(Days >= 5).
#
# Usage (from the repository root):
#   Rscript validation/r_reference_df.R simmargins/data/sleepstudy.csv \
#       tests/adapters/data/lmm_df_reference.json
# Tested with R 4.2.2, lme4 1.1-31, lmerTest 3.1-3, pbkrtest 0.5.2, emmeans 1.8.4-1.

suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(pbkrtest)
  library(emmeans)
  library(jsonlite)
})

args <- commandArgs(trailingOnly = TRUE)
data_path <- if (length(args) >= 1) args[[1]] else "simmargins/data/sleepstudy.csv"
out_path <- if (length(args) >= 2) args[[2]] else "tests/adapters/data/lmm_df_reference.json"

ss <- read.csv(data_path, colClasses = c(Subject = "character"))
subjects <- sort(unique(ss$Subject))
s_index <- match(ss$Subject, subjects) - 1
ub <- ss[ss$Days < 3 + (s_index %% 8), ]
ub$late <- as.numeric(ub$Days >= 5)

ctrl <- lmerControl(optimizer = "bobyqa", optCtrl = list(rhobeg = 2e-4, rhoend = 2e-10))

# one linear combination per row: name and coefficients in the fit's fixed-effect order
combos_ss <- function(d) {
  list(
    list(label = "Days", L = c(0, 1)),
    list(label = "margin Days=0", L = c(1, 0)),
    list(label = "margin Days=9", L = c(1, 9)),
    list(label = "margin overall", L = c(1, mean(d$Days))),
    list(label = "contrast Days 8 vs 1", L = c(0, 7))
  )
}
combos_ub <- function(d) {
  list(
    list(label = "Days", L = c(0, 1, 0)),
    list(label = "late", L = c(0, 0, 1)),
    list(label = "margin Days=2 late=0", L = c(1, 2, 0)),
    list(label = "margin Days=7 late=1", L = c(1, 7, 1)),
    list(label = "margin overall", L = c(1, mean(d$Days), mean(d$late))),
    list(label = "contrast Days=7,late=1 vs Days=2,late=0", L = c(0, 5, 1))
  )
}

one_model <- function(name, formula, data, reml, combos, kr) {
  fit <- lmer(formula, data = data, REML = reml, control = ctrl)
  rows <- lapply(combos, function(cb) {
    L <- matrix(cb$L, nrow = 1)
    s <- contest1D(fit, L, ddf = "Satterthwaite")
    row <- list(
      label = cb$label, L = cb$L,
      estimate = s$Estimate, se_satterthwaite = s[["Std. Error"]], df_satterthwaite = s$df
    )
    if (kr) {
      k <- contest1D(fit, L, ddf = "Kenward-Roger")
      row$se_kenward_roger <- k[["Std. Error"]]
      row$df_kenward_roger <- k$df
    }
    row
  })
  out <- list(
    name = name, formula = deparse(formula), reml = reml, n = nrow(data),
    coef_names = names(fixef(fit)), beta = unname(fixef(fit)),
    theta = unname(getME(fit, "theta")), sigma = sigma(fit),
    vcov = unname(as.matrix(vcov(fit))), deviance = unname(deviance(fit, REML = reml)),
    rows = rows
  )
  if (kr) {
    out$vcov_kenward_roger <- unname(as.matrix(vcovAdj(fit)))
    # emmeans' Kenward-Roger margins, a second route to the same numbers
    at_days <- if (grepl("late", deparse(formula))) list(Days = 2, late = 0) else list(Days = 9)
    em <- summary(emmeans(fit, ~ Days, at = at_days, lmer.df = "kenward-roger"))
    out$emmeans_kenward_roger <- list(at = at_days, estimate = em$emmean, se = em$SE, df = em$df)
  }
  out
}

models <- list(
  one_model("ss_rs_reml", Reaction ~ Days + (Days | Subject), ss, TRUE, combos_ss(ss), TRUE),
  one_model("ss_rs_ml", Reaction ~ Days + (Days | Subject), ss, FALSE, combos_ss(ss), FALSE),
  one_model("ss_diag_reml", Reaction ~ Days + (1 | Subject) + (0 + Days | Subject), ss, TRUE,
            combos_ss(ss), TRUE),
  one_model("ub_ri_reml", Reaction ~ Days + late + (1 | Subject), ub, TRUE, combos_ub(ub), TRUE),
  one_model("ub_ri_ml", Reaction ~ Days + late + (1 | Subject), ub, FALSE, combos_ub(ub), FALSE),
  one_model("ub_rs_reml", Reaction ~ Days + late + (Days | Subject), ub, TRUE, combos_ub(ub), TRUE)
)

meta <- list(
  generated_by = "validation/r_reference_df.R",
  R = R.version.string,
  packages = lapply(c(lme4 = "lme4", lmerTest = "lmerTest", pbkrtest = "pbkrtest",
                      emmeans = "emmeans"), function(p) as.character(packageVersion(p))),
  unbalanced_subset = "s-th subject in sorted order keeps Days < 3 + (s %% 8); late = Days >= 5"
)
dir.create(dirname(out_path), recursive = TRUE, showWarnings = FALSE)
writeLines(toJSON(list(meta = meta, models = models), auto_unbox = TRUE, digits = NA,
                  pretty = TRUE), out_path)
cat("wrote", out_path, "\n")
