//! Lock-free single-producer single-consumer hand-off queues between threads.
