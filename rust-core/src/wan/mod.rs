//! The WAN emulator: a userspace TCP proxy with delay, jitter, bandwidth, cuts and stalls.
