//! The CIMD2 SMSC simulator behind `smslink smsc-sim`.
