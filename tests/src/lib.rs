//! Cross-part system tests live in `tests/`; this library is empty.
