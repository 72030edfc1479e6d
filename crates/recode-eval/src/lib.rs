//! recode-eval (being built)
