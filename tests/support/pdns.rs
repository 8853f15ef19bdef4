//! pdns (placeholder while bind lands)
