//! `Config::validate`. (Helper: flesh out.)
