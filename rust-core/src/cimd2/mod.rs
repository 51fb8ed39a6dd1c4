//! CIMD2 (Nokia): codec (framing, parameters, text) and sans-IO sessions.
