//! recode-data (being built)
