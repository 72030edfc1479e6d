//! recode-server (being built)
