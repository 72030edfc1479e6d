//! recode-model (being built)
