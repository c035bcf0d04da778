//! Session choice.
