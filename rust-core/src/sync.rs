//! Atomics and cells, swapped for loom's under `cfg(loom)` so lock-free code is model-checked.
