//! The pipelined buffer link: frames, handshake, sans-IO session with resynchronisation.
