//! Per-worker flow table (helper: being written).
