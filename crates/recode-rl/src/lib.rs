//! recode-rl (being built)
