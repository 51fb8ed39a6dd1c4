//! The circular array of slots (the seed's Fig. 2): states, cursors, fixed memory.
